"""Snapshot model: selection, errors contained, JSON round trip, JSON Lines persistence."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

import memscope
from memscope import _registry


class Boom:
    """A collector that always fails."""

    name = "boom"
    cost = "cheap"

    def collect(self) -> dict[str, Any]:
        raise RuntimeError("source exploded")


class Missing:
    """A collector whose source is not here."""

    name = "missing"
    cost = "cheap"

    def available(self) -> str | None:
        return "needs a Cray"

    def collect(self) -> dict[str, Any]:
        raise AssertionError("must not be called when unavailable")


class NotJSON:
    """A collector returning data that cannot be serialised."""

    name = "notjson"
    cost = "cheap"

    def collect(self) -> dict[str, Any]:
        return {"value": object()}


@pytest.fixture
def extra_collectors() -> Any:
    added = [Boom(), Missing(), NotJSON()]
    for c in added:
        memscope.register_collector(c)
    yield added
    for c in added:
        memscope.unregister_collector(c.name)


def test_snapshot_has_metadata_and_cheap_sections() -> None:
    snap = memscope.snapshot(label="x")
    assert snap.label == "x"
    assert snap.pid == os.getpid()
    assert snap.python.startswith(("CPython", "PyPy"))
    assert abs(snap.timestamp - __import__("time").time()) < 60
    for name in ("process", "gc", "tracked", "tasks", "threads"):
        assert name in snap, snap.errors
    # heap scans only with deep=True
    assert "census" not in snap and "containers" not in snap


def test_deep_adds_scans_and_names_pick_collectors() -> None:
    deep = memscope.snapshot(deep=True, collectors=None)
    assert {"census", "containers", "large_objects"} <= set(deep.sections)
    only = memscope.snapshot(collectors=["gc", "threads"])
    assert list(only.sections) == ["gc", "threads"]


def test_bad_collector_names_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match=r"collectors: unknown name\(s\) \['nope'\]; accepted"):
        memscope.snapshot(collectors=["nope"])
    with pytest.raises(TypeError, match="not a single string"):
        memscope.snapshot(collectors="gc")
    with pytest.raises(TypeError, match="label must be a str"):
        memscope.snapshot(label=3)  # type: ignore[arg-type]


def test_failing_collectors_become_errors_not_exceptions(extra_collectors: Any) -> None:
    snap = memscope.snapshot()
    assert snap.errors["boom"] == "RuntimeError: source exploded"
    assert snap.errors["missing"] == "unavailable: needs a Cray"
    assert snap.errors["notjson"].startswith("TypeError")
    assert "process" in snap  # the rest is still collected
    with pytest.raises(KeyError, match=r"boom.*source exploded"):
        snap["boom"]


def test_dict_shape_is_the_versioned_contract() -> None:
    snap = memscope.snapshot(label="shape", collectors=["gc", "threads"])
    data = snap.to_dict()
    assert set(data) == {"schema", "label", "timestamp", "pid", "python", "sections", "errors"}
    assert data["schema"] == 1
    assert set(data["sections"]) == {"gc", "threads"}
    json.dumps(data)


def test_round_trip_is_lossless_for_every_builtin_section() -> None:
    snap = memscope.snapshot(label="rt", deep=True)
    again = memscope.Snapshot.from_dict(json.loads(json.dumps(snap.to_dict())))
    assert again == snap
    assert again.to_dict() == snap.to_dict()
    assert memscope.Snapshot.from_json(snap.to_json()) == snap
    # sections come back as their own types, so they still render and diff
    assert type(again["census"]) is type(snap["census"])
    assert again.report() == snap.report()


def test_from_dict_rejects_other_schemas() -> None:
    data = memscope.snapshot(collectors=["gc"]).to_dict()
    data["schema"] = 99
    with pytest.raises(ValueError, match=r"data\['schema'\] must be 1, got 99"):
        memscope.Snapshot.from_dict(data)
    with pytest.raises(TypeError, match="data must be a mapping"):
        memscope.Snapshot.from_dict([1, 2])  # type: ignore[arg-type]


def test_save_appends_and_load_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "snaps.jsonl"
    a = memscope.snapshot(label="a", collectors=["gc"])
    b = memscope.snapshot(label="b", collectors=["gc", "threads"])
    assert memscope.save(a, path) == 1
    assert memscope.save([b], path) == 1
    assert len(path.read_text().splitlines()) == 2
    assert memscope.load(path) == [a, b]


def test_load_tolerates_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "snaps.jsonl"
    a = memscope.snapshot(label="a", collectors=["gc"])
    memscope.save(a, path)
    text = memscope.snapshot(label="torn", collectors=["gc"]).to_json()
    with open(path, "a") as fh:
        fh.write(text[: len(text) // 2])  # a writer still in the middle of its line
    assert [s.label for s in memscope.load(path)] == ["a"]


def test_load_reports_corruption_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "snaps.jsonl"
    path.write_text(
        '{"not": "a snapshot"}\n' + memscope.snapshot(collectors=["gc"]).to_json() + "\n"
    )
    with pytest.raises(ValueError, match=r"snaps.jsonl:1: not a snapshot"):
        memscope.load(path)


def test_load_accepts_a_stream() -> None:
    a = memscope.snapshot(label="s", collectors=["gc"])
    assert memscope.load(io.StringIO(a.to_json() + "\n")) == [a]


def test_save_rejects_non_snapshots_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with pytest.raises(TypeError, match=r"snapshots\[1\] must be a Snapshot"):
        memscope.save([memscope.snapshot(collectors=["gc"]), {"x": 1}], path)  # type: ignore[list-item]
    assert not path.exists()


def test_registry_rejects_bad_collectors() -> None:
    class NoName:
        cost = "cheap"

        def collect(self) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match=r"collector\.name must be"):
        memscope.register_collector(NoName())  # type: ignore[arg-type]

    class BadCost:
        name = "badcost"
        cost = "free"

        def collect(self) -> dict[str, Any]:
            return {}

    with pytest.raises(
        ValueError, match=r"collector.cost must be one of 'cheap', 'scan', 'trace', got 'free'"
    ):
        memscope.register_collector(BadCost())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already registered"):
        memscope.register_collector(_registry.registered_collectors()["gc"])
    assert "badcost" not in memscope.registered_collectors()


def test_report_renders_every_section() -> None:
    snap = memscope.snapshot(label="r", deep=True)
    text = snap.report()
    for name in snap.sections:
        assert f"[{name}]" in text
    assert str(snap) == text


def test_plugin_data_is_normalised_so_the_round_trip_is_exact() -> None:
    class Odd:
        name = "odd"
        cost = "cheap"

        def collect(self) -> dict[str, Any]:
            return {"by_status": {404: 3, 200: 10}, "window": (60, 300)}

    class NotANumber:
        name = "nan_plugin"
        cost = "cheap"

        def collect(self) -> dict[str, Any]:
            return {"ratio": float("nan")}

    memscope.register_collector(Odd())
    memscope.register_collector(NotANumber())
    try:
        snap = memscope.snapshot(collectors=["odd", "nan_plugin"])
    finally:
        memscope.unregister_collector("odd")
        memscope.unregister_collector("nan_plugin")
    assert snap["odd"].to_dict() == {"by_status": {"404": 3, "200": 10}, "window": [60, 300]}
    assert memscope.Snapshot.from_json(snap.to_json()) == snap
    assert snap.errors["nan_plugin"].startswith("ValueError: Out of range float values")


def test_a_built_in_collector_is_configured_by_replacing_it() -> None:
    # the documented way: register the configured instance under the same name
    from memscope.collectors.process import ProcessCollector

    default = memscope.registered_collectors()["process"]
    memscope.register_collector(ProcessCollector(uss=True), replace=True)
    try:
        snap = memscope.snapshot(collectors=["process"])
        assert isinstance(snap["process"]["uss_bytes"], int)  # USS is read now
    finally:
        memscope.register_collector(default, replace=True)
    assert memscope.snapshot(collectors=["process"])["process"]["uss_bytes"] is None
