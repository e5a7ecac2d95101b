"""find_leaks(): real cycles, real uncollectable garbage, real growth, a quiet process."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import memscope
from memscope.why import _leak_cycles, _leaks
from memscope.why._leak_report import Growth


class Node:
    """One half of a two-object reference cycle."""

    def __init__(self) -> None:
        self.peer: Node | None = None
        self.payload = bytes(1000)  # a new bytes object each time: only the cycle holds it


class Record:
    """What the growing thread leaks."""

    def __init__(self, i: int) -> None:
        self.i = i


class Registry(dict[str, int]):
    """A weakly referenceable dict, tracked by name."""


def _gc_state() -> tuple[int, bool, list[Any], list[Any]]:
    return gc.get_debug(), gc.isenabled(), gc.garbage[:], gc.callbacks[:]


def _assert_state(before: tuple[int, bool, list[Any], list[Any]]) -> None:
    flags, enabled, garbage, callbacks = before
    assert gc.get_debug() == flags
    assert gc.isenabled() == enabled
    assert len(gc.garbage) == len(garbage) and all(a is b for a, b in zip(gc.garbage, garbage))
    assert len(gc.callbacks) == len(callbacks)
    assert all(a is b for a, b in zip(gc.callbacks, callbacks))


@pytest.fixture
def no_auto_gc() -> Iterator[None]:
    # the automatic collector would free the planted cycles before the check sees them
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_counts_reference_cycles_exactly_and_frees_them(no_auto_gc: None) -> None:
    refs = []
    for _ in range(150):
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        refs.append(weakref.ref(a))
    del a, b
    before = _gc_state()
    report = memscope.find_leaks(rounds=1, interval=0.0)
    _assert_state(before)
    rows = {c.type: c for c in report.cycles}
    node = rows[f"{__name__}.Node"]
    assert node.count == 300
    assert node.size_bytes == 300 * sys.getsizeof(Node())
    # the 300 payloads were only held by the cycles: freed with them, counted in the total
    assert report.cycle_bytes >= node.size_bytes + 300 * sys.getsizeof(bytes(1000))
    assert report.cycles[0] is node  # the largest group first, with its cycle in words
    assert node.sample == "Node.peer -> Node.peer -> (back to the first Node)"
    assert all(r() is None for r in refs)  # freed, and nothing of memscope holds them
    assert "Node" in str(report) and "cycle collector freed" in str(report)


def test_report_is_json_bounded_by_limit_and_holds_no_objects(no_auto_gc: None) -> None:
    kinds = [type(f"Loop{i}", (), {}) for i in range(12)]
    for kind in kinds:
        for _ in range(3):
            o = kind()
            o.me = o
    del o, kind
    report = memscope.find_leaks(rounds=1, interval=0.0, limit=5)
    assert len(report.cycles) == 5
    assert any("more types in cycles not shown (limit=5)" in n for n in report.notes)
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["cycle_objects"] == report.cycle_objects >= 36
    # words and numbers only: no object of the examined heap is reachable from the report
    seen: list[object] = [report]
    while seen:
        obj = seen.pop()
        if type(obj) is type:
            continue  # an instance refers to its class
        assert type(obj) in (
            _leaks.LeakReport,
            _leaks.CycleGroup,
            _leaks.GarbageGroup,
            Growth,
            dict,
            list,
            tuple,
            str,
            int,
            float,
            bool,
        ), type(obj)
        if type(obj) not in (str, int, float, bool):
            seen.extend(gc.get_referents(obj))


def test_steady_growth_from_a_background_thread(
    make_module: Callable[[str], types.ModuleType],
) -> None:
    mod = make_module("leaky_service")
    mod.LEAK = [Record(-i) for i in range(5_000)]  # among the longest lists: followed
    registry = memscope.track(Registry(), name="t_leak_registry")
    stop = threading.Event()

    def grow() -> None:
        i = 0
        while not stop.is_set():
            mod.LEAK.append(Record(i))
            registry[str(i)] = i
            i += 1
            time.sleep(0.002)

    worker = threading.Thread(target=grow, daemon=True)
    worker.start()
    try:
        report = memscope.find_leaks(rounds=3, interval=0.25, timeout=30)
    finally:
        stop.set()
        worker.join(5)
    assert report.censuses == 4 and not report.partial
    rows = {(g.kind, g.name): g for g in report.growing}
    record = rows[("type", f"{__name__}.Record")]
    assert list(record.counts) == sorted(set(record.counts))  # grew at every census
    # the rate depends on how often a loaded machine lets the thread run: only its sign is sure
    assert record.per_second > 0
    assert "module leaky_service attribute LEAK" in record.where
    box = next(g for g in report.growing if g.kind == "container" and "LEAK" in g.where)
    assert box.name.startswith("list of")
    tracked = rows[("tracked", "t_leak_registry")]
    assert tracked.growth > 0
    assert tracked.where  # the closure cell of the thread's function holds it
    assert report.to_dict()["growing"][0]["growth"] == report.growing[0].growth
    assert "leaky_service" in str(report)
    memscope.untrack(registry)


def test_from_a_worker_thread_with_an_injected_clock() -> None:
    now = [0.0]
    waits: list[float] = []

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    out: list[Any] = []
    worker = threading.Thread(
        target=lambda: out.append(
            _leaks.check(rounds=5, interval=1.0, limit=20, timeout=2.5, clock=clock, sleep=sleep)
        )
    )
    worker.start()
    worker.join(60)
    report = out[0]
    # censuses at 0, 1 and 2 s; the one at 3 s would pass the 2.5 s timeout
    assert report.censuses == 3 and report.partial
    assert waits == [1.0, 1.0]
    assert "partial" in str(report)


def test_gc_state_is_restored_when_the_check_fails(
    monkeypatch: pytest.MonkeyPatch, no_auto_gc: None
) -> None:
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    del a, b

    def broken(obj: object) -> int:
        raise RuntimeError("sizing failed")

    monkeypatch.setattr(_leak_cycles, "size_of", broken)
    before = _gc_state()
    with pytest.raises(RuntimeError, match="sizing failed"):
        memscope.find_leaks(rounds=1, interval=0.0)
    _assert_state(before)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"rounds": 0}, ValueError, "rounds"),
        ({"rounds": 2.0}, TypeError, "rounds"),
        ({"interval": -1}, ValueError, "interval"),
        ({"interval": "1"}, TypeError, "interval"),
        ({"limit": 0}, ValueError, "limit"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"monitor": "monitor"}, TypeError, "monitor must be a memscope.Monitor or None, got str"),
        ({"monitor": object()}, TypeError, "monitor must be a memscope.Monitor"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], error: type, words: str) -> None:
    before = _gc_state()
    with pytest.raises(error, match=words):
        memscope.find_leaks(**kwargs)
    _assert_state(before)


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_quiet_process_reports_nothing() -> None:
    out = _run(
        """
        import gc, json
        import memscope, memscope.why._leaks
        gc.collect()  # what importing left behind
        report = memscope.find_leaks(rounds=3, interval=0.2)
        print(json.dumps(report.to_dict()))
        print(report)
        """
    )
    data = json.loads(out.splitlines()[0])
    assert data["clean"], out
    assert data["cycles"] == [] and data["garbage"] == [] and data["growing"] == []
    assert data["censuses"] == 4
    assert "no leaks found" in out


def test_what_importing_memscope_why_leaves_is_not_the_programs() -> None:
    # the first find_leaks imports memscope.why: the cycles that import leaves (a slots
    # dataclass's first class, the stdlib's enums) are memscope's; with the collector off
    # they are still there at the check's first collection, and it must not count them
    out = _run(
        """
        import gc, json
        import memscope
        gc.collect()
        gc.disable()
        report = memscope.find_leaks(rounds=1, interval=0.0)
        print(json.dumps(report.to_dict()))
        print(report)
        """
    )
    data = json.loads(out.splitlines()[0])
    assert data["cycle_objects"] == 0 and data["cycles"] == [], out
    assert data["clean"], out


def test_the_programs_cycles_made_just_before_the_first_check_are_counted() -> None:
    # made young, right before the import that find_leaks' first use does: still counted
    out = _run(
        """
        import gc, json
        import memscope

        class Pair:
            def __init__(self):
                self.me = self

        gc.collect()
        gc.disable()
        pairs = [Pair() for _ in range(300)]
        del pairs
        report = memscope.find_leaks(rounds=1, interval=0.0)
        print(json.dumps(report.to_dict()))
        """
    )
    data = json.loads(out.splitlines()[0])
    rows = {c["type"]: c["count"] for c in data["cycles"]}
    assert rows == {"__main__.Pair": 300}, data  # (their attributes live inline, no dicts)
    assert data["cycle_objects"] == 300


def test_uncollectable_garbage_is_reported_not_counted_as_freed() -> None:
    pytest.importorskip("_testcapi")
    out = _run(
        """
        import gc, _testcapi, memscope

        class Legacy:
            def __tp_del__(self):
                pass

        Legacy = _testcapi.with_tp_del(Legacy)  # a C-level (legacy) finalizer: uncollectable

        class Tail:
            pass

        gc.disable()
        for _ in range(4):
            a, t = Legacy(), Tail()
            a.tail, t.head = t, a
        del a, t
        report = memscope.find_leaks(rounds=1, interval=0.0)
        held = list(gc.garbage)
        print(report.garbage_objects, len(held))
        print(sorted((g.type, g.count) for g in report.garbage))
        print(sorted((c.type, c.count) for c in report.cycles))
        for o in held:
            o.__dict__.clear()
        gc.garbage.clear()
        print(report)
        """
    )
    lines = out.splitlines()
    # gc.garbage holds the objects with the finalizer (what they hold stays alive with them);
    # the check's collections put them back where it found them
    assert lines[0] == "4 4"
    assert lines[1] == "[('__main__.Legacy', 4)]"
    assert "Legacy" not in lines[2] and "Tail" not in lines[2]  # never freed, so not "cycles"
    assert "gc.garbage holds 4 uncollectable objects" in out
    assert "cycle: Legacy.tail -> Tail.head -> (back to the first Legacy)" in out


def test_debug_saveall_set_by_the_user_is_kept() -> None:
    out = _run(
        """
        import gc, memscope, memscope.why._leaks
        gc.collect()
        gc.disable()

        class Pair:
            pass

        for _ in range(5):
            p, q = Pair(), Pair()
            p.other, q.other = q, p
        del p, q
        gc.set_debug(gc.DEBUG_SAVEALL)
        report = memscope.find_leaks(rounds=1, interval=0.0)
        print(gc.get_debug() == gc.DEBUG_SAVEALL)
        print([(c.type, c.count) for c in report.cycles if c.type.endswith("Pair")])
        print(sum(type(o).__name__ == "Pair" for o in gc.garbage))
        print(report.notes)
        """
    )
    lines = out.splitlines()
    assert lines[0] == "True"
    assert lines[1] == "[('__main__.Pair', 10)]"
    assert lines[2] == "10"  # the user's DEBUG_SAVEALL asked the gc to keep them: kept
    assert "DEBUG_SAVEALL is set" in lines[3]


def _wait_for(monitor: memscope.Monitor, snapshots: int, step: Callable[[], None]) -> None:
    deadline = time.monotonic() + 60
    while len(monitor) < snapshots:
        assert time.monotonic() < deadline, f"{len(monitor)} snapshots in 60 s"
        step()
        time.sleep(0.02)


@pytest.mark.slow
def test_what_grew_over_a_monitors_history(
    make_module: Callable[[str], types.ModuleType],
) -> None:
    mod = make_module("history_service")
    mod.ORDERS = []
    registry = memscope.track(Registry(), name="t_history_registry")

    def grow() -> None:  # a steady leak: the same amount every step, whatever the monitor does
        start = len(mod.ORDERS)
        mod.ORDERS.extend(Record(start + i) for i in range(200))
        registry[str(start)] = start

    monitor = memscope.Monitor(interval=0.1, deep_every=1, label="t_history")
    monitor.start()
    try:
        _wait_for(monitor, 10, grow)
    finally:
        assert monitor.stop(timeout=30)
    report = memscope.find_leaks(rounds=1, interval=0.05, monitor=monitor)
    assert report.history_snapshots == len(monitor) >= 10
    rows = {(g.kind, g.name): g for g in report.growing if g.source == "history"}
    record = rows[("type", f"{__name__}.Record")]
    assert record.unit == "bytes" and record.per_second > 0
    assert record.counts[0] < record.counts[-1] <= len(mod.ORDERS)
    assert record.span_seconds > 0.5  # ten snapshots at least 0.1 s apart
    box = next(g for (kind, _), g in rows.items() if kind == "container" and "ORDERS" in g.where)
    assert "module history_service attribute ORDERS" in box.where
    assert box.name.startswith("list of") and box.counts[-1] > box.counts[0] > 0
    tracked = rows[("tracked", "t_history_registry")]
    assert tracked.counts[-1] > tracked.counts[0] and tracked.unit == "count"
    # the monitor's own growing history is not taken for the program's leak
    latest = monitor.latest
    assert latest is not None
    own = [
        row["name"]
        for row in latest.sections["tracked"]["objects"]
        if row["type"] == "memscope.monitor.Monitor" and row["len"] >= 9
    ]
    assert own and not [name for name in own if ("tracked", name) in rows]
    assert not [g for g in rows.values() if g.name in ("dict", "int", "float", "str")]
    text = str(report)
    assert f"grew steadily over the monitor's {report.history_snapshots} snapshots:" in text
    assert f"type {__name__}.Record: steady over the last " in text
    assert "/h (objects " in text
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["history_snapshots"] == report.history_snapshots
    memscope.untrack(registry)


@pytest.mark.slow
def test_a_flat_process_has_nothing_from_its_history() -> None:
    out = _run(
        """
        import gc, json, time
        import memscope
        keep = [dict(a=i) for i in range(5_000)]  # made once, then left alone
        gc.collect()
        m = memscope.Monitor(interval=0.1, deep_every=1, history=6).start()
        deadline = time.monotonic() + 60
        while len(m) < 6 or m.memscope_stats()["taken"] < 12:  # full, then more
            assert time.monotonic() < deadline
            time.sleep(0.05)
        m.stop(timeout=30)
        report = memscope.find_leaks(rounds=1, interval=0.05, monitor=m)
        print(json.dumps(report.to_dict()))
        print(report)
        m2 = memscope.Monitor(interval=0.1, deep_every=1).start()  # a history still filling
        deadline = time.monotonic() + 60
        while len(m2) < 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        m2.stop(timeout=30)
        print(json.dumps(memscope.find_leaks(rounds=1, interval=0.05, monitor=m2).to_dict()))
        """
    )
    lines = out.splitlines()
    for data in (json.loads(lines[0]), json.loads(lines[-1])):
        assert data["history_snapshots"] >= 6
        assert [g for g in data["growing"] if g["source"] == "history"] == [], out
    assert "grew steadily over the monitor" not in out


def test_a_monitor_snapshotting_during_the_check_is_not_its_leak(no_auto_gc: None) -> None:
    monitor = memscope.Monitor(interval=60, deep_every=1, label="t_during")
    for _ in range(3):
        monitor.take()
    now = [0.0]

    def wait(seconds: float) -> None:  # the wait between censuses: a running monitor's snapshot
        monitor.take()
        now[0] += seconds

    report = _leaks.check(
        rounds=3, interval=1.0, limit=50, timeout=120, clock=lambda: now[0], sleep=wait
    )
    own = {(g.kind, g.name) for g in report.growing}
    assert ("type", "memscope._snapshot.Snapshot") in own  # the raw check sees it grow
    assert ("tracked", "monitor.t_during") in own
    mixed = _leaks.with_history(report, monitor, 50)
    assert mixed.history_snapshots == 6 == len(monitor)  # 3 before, 1 a wait
    assert not [g for g in mixed.growing if g.name.startswith("memscope.")]
    assert not [g for g in mixed.growing if g.name == "monitor.t_during"]
