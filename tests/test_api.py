"""The public surface: exported names, lazy imports, import cost."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

import memscope

PUBLIC_MODULES = ("memscope", "memscope.guard", "memscope.testing")
# names a module binds that are not part of its surface
NOT_EXPORTED = {"annotations", "TYPE_CHECKING", "Any"}


def public_names(module: ModuleType) -> list[str]:
    """What the module really offers: every public attribute once each name has loaded."""
    for name in module.__all__:
        getattr(module, name)  # lazy names load into the module's namespace
    return sorted(
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name == "__version__")
        and name not in NOT_EXPORTED
        and not isinstance(value, ModuleType)  # submodules are reached by import, not exported
    )


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_exactly_the_public_names(name: str) -> None:
    # the way httpx's test_exported_members keeps __all__ honest, lazy names included
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__), "__all__ is sorted"
    assert module.__all__ == public_names(module)
    for export in module.__all__:
        value = getattr(module, export)
        origin = getattr(value, "__module__", None)
        if origin is not None and not isinstance(value, str):
            assert origin.startswith("memscope"), f"{name}.{export} comes from {origin}"
    lazy = getattr(module, "_LAZY", None)
    if lazy is not None:
        # a lazy map that drifts from __all__ hides a name or exports a missing one
        assert set(lazy) == set(module.__all__) - {"__version__"}


def test_public_names_check_catches_a_stray_name() -> None:
    fake = ModuleType("fake")
    fake.__all__ = ["a"]  # type: ignore[attr-defined]
    fake.a = 1  # type: ignore[attr-defined]
    fake.helper = 2  # type: ignore[attr-defined]
    assert public_names(fake) != fake.__all__  # type: ignore[attr-defined]


def test_design_names_resolve() -> None:
    for name in (
        "snapshot",
        "compare",
        "Snapshot",
        "Diff",
        "Finding",
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
        "find_leaks",
        "LeakReport",
        "interactive",
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
