"""The gc collector: real cycles, real collections, pause timing through gc.callbacks."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator

import pytest

import memscope
from memscope.collectors import gcstats
from memscope.collectors.gcstats import GCCollector, GCSection


class Node:
    """One half of a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def make_cycles(n: int) -> None:
    for _ in range(n):
        a, b = Node(), Node()
        a.other, b.other = b, a


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def gen(data: dict[str, object], g: int) -> dict[str, object]:
    rows = data["generations"]
    assert isinstance(rows, list)
    row = rows[g]
    assert row["generation"] == g
    return row  # type: ignore[no-any-return]


def test_reports_counts_thresholds_and_stats(gc_enabled: None) -> None:
    data = GCCollector().collect()
    assert data["enabled"] is True
    assert len(data["generations"]) == len(gc.get_stats())
    for g, threshold in enumerate(gc.get_threshold()[: len(data["generations"])]):
        assert gen(data, g)["threshold"] == threshold
    assert data["collections_total"] == sum(s["collections"] for s in gc.get_stats())
    assert data["garbage"] == len(gc.garbage)
    assert isinstance(data["pauses_since"], float)
    assert data["pauses_since"] <= time.time()


def test_collected_cycles_and_pauses_move() -> None:
    collector = GCCollector()
    before = collector.collect()
    make_cycles(5000)
    gc.collect()
    gc.collect(0)
    after = collector.collect()
    assert gen(after, 2)["collections_total"] >= gen(before, 2)["collections_total"] + 1  # type: ignore[operator]
    assert after["collected_total"] - before["collected_total"] >= 10_000
    assert after["pauses_total"] - before["pauses_total"] >= 2
    assert gen(after, 2)["pauses_total"] > gen(before, 2)["pauses_total"]  # type: ignore[operator]
    assert gen(after, 0)["pauses_total"] > gen(before, 0)["pauses_total"]  # type: ignore[operator]
    assert after["pause_seconds_total"] > before["pause_seconds_total"]
    assert after["pause_seconds_max"] > 0
    assert after["pause_seconds_max"] <= after["pause_seconds_total"]
    assert gen(after, 2)["pause_seconds_max"] <= gen(after, 2)["pause_seconds_total"]  # type: ignore[operator]


def test_callback_installed_once_and_only_on_first_use() -> None:
    import subprocess
    import sys

    # a fresh interpreter: importing memscope (and the collector module) installs nothing
    code = (
        "import gc, memscope\n"
        "from memscope.collectors.gcstats import GCCollector, _pauses\n"
        "n0 = len(gc.callbacks)\n"
        "GCCollector().collect(); GCCollector().collect(); memscope.snapshot()\n"
        "print(n0, sum(cb is _pauses for cb in gc.callbacks))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["0", "1"]


def test_callback_reinstalled_if_removed_keeping_totals() -> None:
    collector = GCCollector()
    first = collector.collect()
    gc.callbacks.remove(gcstats._pauses)
    try:
        gc.collect()  # not timed: the callback is out
        second = collector.collect()
        assert gcstats._pauses in gc.callbacks
        assert gc.callbacks.count(gcstats._pauses) == 1
        assert second["pauses_since"] == first["pauses_since"]
        assert second["pauses_total"] >= first["pauses_total"]
    finally:
        if gcstats._pauses not in gc.callbacks:
            gc.callbacks.append(gcstats._pauses)


def test_pause_clock_with_injected_clock() -> None:
    ticks = iter([10.0, 10.25, 20.0, 20.5, 30.0, 30.1])
    clock = gcstats._PauseClock(clock=lambda: next(ticks))
    clock("start", {"generation": 0})
    clock("stop", {"generation": 0})
    clock("start", {"generation": 2})
    clock("stop", {"generation": 2})
    clock("start", {"generation": 2})
    clock("stop", {"generation": 2})
    assert clock.count == [1, 0, 2]
    assert clock.total == pytest.approx([0.25, 0.0, 0.6])
    assert clock.max == pytest.approx([0.25, 0.0, 0.5])
    clock("stop", {"generation": 1})  # a stop without its start is ignored
    assert clock.count == [1, 0, 2]


def test_uncollectable_garbage_shows(gc_enabled: None) -> None:
    saved = gc.get_debug()
    collector = GCCollector()
    before = collector.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # every collected object lands in gc.garbage
    try:
        make_cycles(10)
        gc.collect()
        after = collector.collect()
    finally:
        gc.set_debug(saved)
        gc.garbage.clear()
    assert after["garbage"] >= before["garbage"] + 20


def test_summary_lines_and_round_trip() -> None:
    a = memscope.snapshot(label="a", collectors=["gc"])
    make_cycles(100)
    gc.collect()
    b = memscope.snapshot(label="b", collectors=["gc"])
    section = b["gc"]
    assert isinstance(section, GCSection)
    lines = section.summary_lines()
    assert 1 <= len(lines) <= 6
    assert lines[0].startswith("gc enabled") or lines[0].startswith("gc DISABLED")
    assert "pauses" in lines[1]
    json.dumps(b.to_dict())
    assert memscope.Snapshot.from_json(b.to_json()) == b
    diff = memscope.compare(a, b)
    assert not diff.errors
    assert diff.delta("gc", "collections_total") >= 1
    assert diff.delta("gc", "generations[2].collections_total") >= 1
    assert diff.get("gc", "pauses_since") is None  # a timestamp, not a change worth reporting


def test_bookkeeping_is_constant_size() -> None:
    clock = gcstats._pauses
    GCCollector().collect()
    sizes = (len(clock.count), len(clock.total), len(clock.max))
    for _ in range(50):
        gc.collect(0)
    assert (len(clock.count), len(clock.total), len(clock.max)) == sizes
