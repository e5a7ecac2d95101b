"""Monitor: a real background thread, a bounded history, a JSONL record readable while written."""

from __future__ import annotations

import gc
import sys
import threading
import time
from pathlib import Path

import pytest

import memscope
from memscope import Snapshot


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_background_thread_takes_snapshots_and_records_them(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    seen: list[Snapshot] = []
    monitor = memscope.Monitor(
        interval=0.02,
        history=50,
        record=path,
        collectors=["process", "gc"],
        on_snapshot=seen.append,
        label="t1",
    )
    assert not monitor.running and monitor.latest is None
    with monitor:
        assert monitor.running
        wait_for(lambda: len(monitor) >= 3)
        # the record is readable while the monitor is still appending to it
        assert len(memscope.load(path)) >= 3
    assert not monitor.running
    snaps = monitor.snapshots()
    assert len(snaps) >= 3
    assert [s.label for s in snaps[:2]] == ["t1 #1", "t1 #2"]
    assert set(snaps[0].sections) == {"process", "gc"}
    assert seen[: len(snaps)] == snaps[: len(seen)]
    assert len(memscope.load(path)) == len(snaps)
    names = {t.name for t in threading.enumerate()}
    assert "memscope-monitor-t1" not in names


def test_history_is_bounded_and_growth_compares_the_window() -> None:
    monitor = memscope.Monitor(interval=60, history=3, collectors=["census"], label="t2")
    keep: list[bytes] = []
    # exact counts: the test runner's own threads (xdist's channel makes and frees bytes)
    # get no turn of the GIL between the snapshots
    switch = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        for i in range(6):
            keep.append(bytes(1000) + bytes([i]))
            monitor.take()
    finally:
        sys.setswitchinterval(switch)
    snaps = monitor.snapshots()
    assert len(snaps) == 3 == len(monitor)
    assert [s.label for s in snaps] == ["t2 #4", "t2 #5", "t2 #6"]
    diff = monitor.growth()
    assert diff is not None
    assert diff.delta("census", "by_type[bytes].count") == 2
    del keep


def test_deep_every_and_stop_is_prompt() -> None:
    monitor = memscope.Monitor(interval=3600, deep_every=2, label="t3")
    monitor.start()
    wait_for(lambda: len(monitor) >= 1)
    started = time.monotonic()
    assert monitor.stop(timeout=5)
    assert time.monotonic() - started < 2  # woken, not left to sleep out its hour
    monitor.take()  # the second snapshot is deep
    first, second = monitor.snapshots()
    assert "census" not in first and "census" in second


def test_failures_are_contained(tmp_path: Path) -> None:
    def boom(snap: Snapshot) -> None:
        raise RuntimeError("callback bug")

    bad_record = tmp_path / "missing-dir" / "m.jsonl"
    monitor = memscope.Monitor(
        interval=60, record=bad_record, on_snapshot=boom, collectors=["gc"], label="t4"
    )
    monitor.take()
    monitor.take()
    assert monitor.errors_total == 2
    assert monitor.record_errors_total == 2
    assert len(monitor) == 2


def test_shows_in_the_tracked_section_and_dies_quietly() -> None:
    monitor = memscope.Monitor(interval=60, collectors=["gc"], label="t5")
    monitor.take()
    rows = {r["name"]: r for r in memscope.snapshot(collectors=["tracked"])["tracked"]["objects"]}
    assert rows["monitor.t5"]["stats"]["taken"] == 1
    del monitor
    gc.collect()
    rows = {r["name"]: r for r in memscope.snapshot(collectors=["tracked"])["tracked"]["objects"]}
    assert "monitor.t5" not in rows


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "interval must be a finite number of seconds > 0"),
        # nan busy-looped (720 snapshots in 0.5 s) and inf died in the thread: both refused
        ({"interval": float("nan")}, "interval must be a finite number of seconds"),
        ({"interval": float("inf")}, "interval must be a finite number of seconds"),
        ({"history": 0}, "history must be an int >= 1"),
        ({"deep_every": -1}, "deep_every must be an int >= 0"),
        ({"collectors": ["nope"]}, r"collectors: unknown name"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        memscope.Monitor(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": "5"}, "interval must be a finite number of seconds, got str"),
        ({"history": 2.0}, "history must be an int, got float"),
        ({"on_snapshot": 3}, "on_snapshot must be callable or None"),
        ({"label": ""}, "label must be a non-empty str"),
    ],
)
def test_wrong_types_are_type_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message) as info:
        memscope.Monitor(**kwargs)  # type: ignore[arg-type]
    # the one rule: a wrong type is a TypeError, a value out of range a ValueError
    assert info.type is (ValueError if kwargs.get("label") == "" else TypeError)


def test_start_after_a_stop_that_timed_out_really_runs() -> None:
    gate = threading.Event()

    def slow(snap: Snapshot) -> None:
        gate.wait(5)  # the first snapshot's callback holds its thread up

    monitor = memscope.Monitor(interval=0.01, collectors=["gc"], on_snapshot=slow, label="t6")
    monitor.start()
    wait_for(lambda: len(monitor) >= 1)
    assert monitor.stop(timeout=0.05) is False  # still inside the slow callback
    assert not monitor.running
    monitor.on_snapshot = None
    monitor.start()
    gate.set()
    wait_for(lambda: len(monitor) >= 4)
    assert monitor.running
    assert len(monitor) >= 4
    assert monitor.stop()


def test_trends_arguments_follow_the_one_rule() -> None:
    monitor = memscope.Monitor(interval=60, collectors=["process"], label="t9")
    assert monitor.trends() == []  # nothing kept yet
    with pytest.raises(ValueError, match="seconds must be"):
        monitor.trends(seconds=0)
    with pytest.raises(TypeError, match="top must be"):
        monitor.trends(top="5")  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 0, -1])
def test_growth_refuses_a_window_that_is_no_number_of_seconds(seconds: float) -> None:
    monitor = memscope.Monitor(interval=60, collectors=["gc"], label="t-window")
    monitor.take()
    monitor.take()
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        monitor.growth(seconds)  # nan raised StopIteration from inside
