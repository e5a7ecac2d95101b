"""The public surface: exported names, lazy imports, import cost."""

from __future__ import annotations

import subprocess
import sys

import memscope
import memscope.guard


def test_all_is_sorted_and_complete() -> None:
    for module in (memscope, memscope.guard):
        names = module.__all__
        assert names == sorted(names), module.__name__
        for name in names:
            assert getattr(module, name) is not None, name
        public = {n for n in dir(module) if not n.startswith("_") and n not in ("annotations",)}
        public -= {"TYPE_CHECKING", "Any"}
        # every public attribute (other than submodules) is exported
        missing = {
            n
            for n in public - set(names)
            if not isinstance(getattr(module, n), type(sys)) and n not in {"guard"}
        }
        assert not missing, missing


def test_design_names_resolve() -> None:
    for name in (
        "snapshot",
        "compare",
        "Snapshot",
        "Diff",
        "track",
        "clear_caches",
        "save",
        "load",
        "register_collector",
        "start_tracing",
        "stop_tracing",
        "BoundedCache",
        "SSEBuffer",
        "release_memory",
        "MemoryGrowthError",
    ):
        assert hasattr(memscope, name), name
    assert issubclass(memscope.MemoryGrowthError, AssertionError)


def test_import_is_light_and_starts_nothing() -> None:
    code = (
        "import sys, threading, tracemalloc, gc\n"
        "before = threading.active_count(); cbs = len(gc.callbacks)\n"
        "import memscope\n"
        "heavy = [m for m in ('objgraph', 'pympler', 'graphviz', 'psutil', 'asyncio', 'ctypes',"
        " 'rich', 'matplotlib', 'starlette', 'prometheus_client', 'httpx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert threading.active_count() == before\n"
        "assert not tracemalloc.is_tracing()\n"
        "assert len(gc.callbacks) == cbs\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
