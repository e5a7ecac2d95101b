"""One contract every collector passes: built-in ones and a third-party one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import memscope
from memscope import _registry
from memscope._base.section import flatten_numbers
from memscope._snapshot import run_collector

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
from open_files_collector import OpenFilesCollector

BUILTIN = [
    "process",
    "gc",
    "tracemalloc",
    "census",
    "containers",
    "large_objects",
    "tracked",
    "tasks",
    "threads",
    "allocator",
    "accounting",
]


@pytest.fixture(scope="module", autouse=True)
def third_party() -> Any:
    memscope.register_collector(OpenFilesCollector())
    memscope.start_tracing(frames=2)  # so the trace-cost collector has something to say
    yield
    memscope.stop_tracing()
    memscope.unregister_collector("open_files")


@pytest.mark.parametrize("name", [*BUILTIN, "open_files"])
def test_collector_contract(name: str) -> None:
    collector = _registry.registered_collectors()[name]
    assert collector.name == name
    assert collector.cost in ("cheap", "scan", "trace")
    assert isinstance(collector, memscope.Collector)

    first, error = run_collector(collector)
    assert error is None, error
    assert first is not None
    assert first.name == name
    data = first.to_dict()
    json.dumps(data)  # JSON-safe

    # it round-trips inside a snapshot, with its own section type
    snap = memscope.Snapshot(label="c", sections={name: first})
    again = memscope.Snapshot.from_json(snap.to_json())
    assert again[name] == first
    assert type(again[name]) is type(first)

    # it diffs against an earlier self and against nothing
    second, _ = run_collector(collector)
    assert second is not None
    later = memscope.Snapshot(label="d", sections={name: second})
    diff = memscope.compare(snap, later)
    assert name not in diff.errors
    for change in diff[name]:
        assert change.section == name
        assert change.unit in ("bytes", "seconds", "count", "")
    # against nothing, every number that is not 0 is a change from 0, and nothing else is
    from_nothing = second.diff(None)
    assert all(isinstance(c, memscope.Change) and c.before == 0 for c in from_nothing)
    assert all(c.after != 0 for c in from_nothing)
    expected = {
        key
        for key, value in flatten_numbers(second.to_dict()).items()
        if value != 0 and key.rsplit(".", 1)[-1] not in type(second).ignore
    }
    assert expected <= {c.key for c in from_nothing}

    # and it renders in a report
    lines = first.summary_lines(top=3)
    assert lines and all(isinstance(line, str) for line in lines)


@pytest.mark.parametrize("name", [*BUILTIN, "open_files"])
def test_failure_of_collector_is_contained(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    collector = _registry.registered_collectors()[name]

    def explode() -> Any:
        raise MemoryError("simulated")

    monkeypatch.setattr(collector, "collect", explode)
    snap = memscope.snapshot(collectors=[name, "threads"] if name != "threads" else [name])
    assert snap.errors[name] == "MemoryError: simulated"


def test_entry_point_plugins_load_and_broken_ones_are_reported(tmp_path: Path) -> None:
    dist = tmp_path / "memscope_open_files-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: memscope-open-files\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[memscope.collectors]\n"
        "open_files = open_files_collector:OpenFilesCollector\n"
        "broken = open_files_collector:BrokenOnLoad\n"
    )
    code = textwrap.dedent(
        """
        import json, memscope
        snap = memscope.snapshot()
        print(json.dumps({"sections": sorted(snap.sections), "errors": snap.errors}))
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), str(Path(__file__).parent / "plugins"), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert "open_files" in result["sections"]
    assert result["errors"]["broken"].startswith("entry point failed to load: RuntimeError")
