"""MemoryGuard: hysteresis on a fake clock, and a real thread against real allocations."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import memscope
from memscope._base.proc import rss_bytes
from memscope._base.units import parse_limit
from memscope.guard.memory_guard import MemoryGuard, MemoryReading, running_guards

MiB = 1 << 20


def _rss() -> int:
    """This process's RSS, which every platform these tests run on can read."""
    value = rss_bytes()
    assert value is not None
    return value


class Meter:
    """A fake memory reading and clock that the test (and fake actions) move."""

    def __init__(self, usage: int) -> None:
        self.usage = usage
        self.now = 0.0
        self.calls: list[str] = []

    def read(self) -> int:
        return self.usage

    def clock(self) -> float:
        return self.now

    def action(self, name: str, free: int) -> Callable[[], None]:
        def act() -> None:
            self.calls.append(name)
            self.usage -= free

        act.__qualname__ = name
        return act


def fake_guard(meter: Meter, **kwargs: Any) -> MemoryGuard:
    kwargs.setdefault("name", f"fake-{id(meter)}")
    return MemoryGuard(usage=meter.read, clock=meter.clock, capacity=10_000, **kwargs)


@pytest.fixture(autouse=True)
def no_guard_left_running() -> Iterator[None]:
    yield
    for guard in running_guards().values():
        guard.stop()


def test_actions_run_in_order_until_usage_is_back_under() -> None:
    m = Meter(500)
    guard = fake_guard(
        m,
        soft_limit=1000,
        actions=[m.action("a", 50), m.action("b", 200), m.action("c", 100)],
    )
    result = guard.check()
    assert result.state == "ok" and result.actions == () and m.calls == []
    m.usage = 1100
    result = guard.check()
    # a leaves 1050 (still over), b brings it to 850: c is not needed
    assert m.calls == ["a", "b"]
    assert [(r.action, r.usage_before_bytes, r.usage_after_bytes) for r in result.actions] == [
        ("a", 1100, 1050),
        ("b", 1050, 850),
    ]
    assert result.actions[1].freed_bytes == 200
    assert guard.history == list(result.actions)
    assert result.state == "ok"


def test_hysteresis_and_cooldown_prevent_flapping() -> None:
    m = Meter(1100)
    guard = fake_guard(
        m, soft_limit=1000, hysteresis=0.1, cooldown=30, actions=[m.action("free", 150)]
    )
    guard.check()  # 1100 -> 950: one round
    assert m.calls == ["free"]
    # creeping back over the limit, within the band and the cooldown: no new round
    for t, usage in ((1, 1010), (2, 1050), (20, 1020)):
        m.now, m.usage = t, usage
        assert guard.check().actions == ()
        assert guard.state == "soft"
    assert m.calls == ["free"]
    m.now, m.usage = 31, 1020  # cooldown over: still above, so act again
    guard.check()
    assert m.calls == ["free", "free"]
    # falling under soft * (1 - hysteresis) = 900 re-arms: the next crossing acts at once
    m.now, m.usage = 32, 899
    guard.check()
    m.now, m.usage = 33, 1000
    guard.check()
    assert m.calls == ["free", "free", "free"]
    assert guard.action_rounds_total == 3


def test_hard_limit_callbacks_fire_once_per_episode() -> None:
    m = Meter(100)
    events: list[tuple[str, int]] = []
    guard = fake_guard(
        m,
        soft_limit=1000,
        hard_limit=2000,
        hysteresis=0.1,
        actions=[m.action("useless", 0)],
        on_hard_limit=lambda r: events.append(("hard", r.usage_bytes)),
        on_recovered=lambda r: events.append(("recovered", r.usage_bytes)),
    )
    # oscillating around the hard limit: one "hard", no "recovered" until under 1800
    for t, usage in enumerate((2100, 1990, 2010, 1850, 2050), start=1):
        m.now, m.usage = t, usage
        guard.check()
    assert events == [("hard", 2100)]
    assert guard.state == "hard"
    m.now, m.usage = 10, 1700
    result = guard.check()
    assert result.recovered and events[-1] == ("recovered", 1700)
    assert guard.state == "soft"
    m.now, m.usage = 11, 2000
    assert guard.check().hard_limit_entered
    assert [e[0] for e in events] == ["hard", "recovered", "hard"]
    assert guard.hard_limit_events_total == 2


def test_actions_run_before_the_hard_callback_and_can_avoid_it() -> None:
    m = Meter(2500)
    events: list[MemoryReading] = []
    guard = fake_guard(
        m,
        soft_limit=1000,
        hard_limit=2000,
        actions=[m.action("big", 2000)],
        on_hard_limit=events.append,
    )
    result = guard.check()
    assert m.calls == ["big"] and result.usage_bytes == 500
    assert events == [] and not result.hard_limit_entered


def test_hard_only_guard_acts_at_the_hard_limit() -> None:
    m = Meter(2500)
    events: list[MemoryReading] = []
    guard = fake_guard(
        m, hard_limit=2000, actions=[m.action("small", 100)], on_hard_limit=events.append
    )
    guard.check()
    assert m.calls == ["small"]
    assert len(events) == 1 and events[0].usage_bytes == 2400
    assert events[0].hard_limit_bytes == 2000 and events[0].soft_limit_bytes is None


def test_failing_action_is_contained_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = Meter(1500)

    def broken() -> None:
        raise OSError("disk gone")

    guard = fake_guard(m, soft_limit=1000, actions=[broken, m.action("ok", 600)])
    with caplog.at_level(logging.WARNING, logger="memscope.guard"):
        result = guard.check()
    assert [r.error for r in result.actions] == ["OSError: disk gone", None]
    assert guard.action_errors_total == 1 and m.calls == ["ok"]
    assert "action broken failed" in caplog.text
    # every action is logged with the usage before and after
    assert "action ok: usage 1.5 KiB -> 900 B" in caplog.text


def test_reading_failure_is_logged_once_and_the_guard_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = {"fail": True}

    def flaky() -> int:
        if state["fail"]:
            raise PermissionError("no /proc")
        return 10

    guard = MemoryGuard(soft_limit=100, usage=flaky, name="flaky")
    with caplog.at_level(logging.ERROR, logger="memscope.guard"):
        for _ in range(5):
            assert guard.check().state == "error"
    assert caplog.text.count("reading memory failed") == 1
    assert guard.errors_total == 5
    state["fail"] = False
    assert guard.check().state == "ok"


def test_limits_accept_bytes_fractions_and_sizes() -> None:
    def cap() -> int:
        return 8 << 30

    assert parse_limit("soft_limit", 123, cap) == 123
    assert parse_limit("soft_limit", 0.5, cap) == 4 << 30
    assert parse_limit("soft_limit", 1.0, cap) == 8 << 30
    assert parse_limit("soft_limit", "512MiB", cap) == 512 << 20
    assert parse_limit("soft_limit", "1.5 GB", cap) == 1_500_000_000
    assert parse_limit("soft_limit", "75%", cap) == 6 << 30
    assert parse_limit("soft_limit", None, cap) is None
    guard = MemoryGuard(soft_limit=0.25, hard_limit="50%", capacity=1000, usage=lambda: 0)
    assert (guard.soft_limit_bytes, guard.hard_limit_bytes) == (250, 500)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"soft_limit": 1.5}, ValueError, r"must be in \(0, 1\]; pass a number of bytes as an int"),
        ({"soft_limit": 0.0}, ValueError, r"\(0, 1\]"),
        ({"soft_limit": float("nan")}, ValueError, r"\(0, 1\]"),
        ({"soft_limit": 0}, ValueError, "soft_limit must be > 0 bytes"),
        ({"soft_limit": -5}, ValueError, "soft_limit must be > 0 bytes"),
        ({"soft_limit": True}, TypeError, "got bool"),
        ({"soft_limit": "lots"}, ValueError, "'512MiB'"),
        ({"soft_limit": "5 parsecs"}, ValueError, "is not a size"),
        ({"soft_limit": [1]}, TypeError, "got list"),
        ({"hard_limit": None}, ValueError, "give soft_limit, hard_limit or both"),
        ({"soft_limit": 500, "hard_limit": 400}, ValueError, "must be below hard_limit"),
        ({"interval": 0}, ValueError, "interval must be a finite number of seconds >= 0.001"),
        ({"interval": "5"}, TypeError, "interval must be a finite number of seconds, got str"),
        ({"hysteresis": 0.9}, ValueError, "hysteresis must be a finite number between 0.0 and 0.5"),
        ({"cooldown": -1}, ValueError, "cooldown"),
        ({"cooldown": None}, TypeError, "cooldown"),
        ({"actions": ["gc"]}, ValueError, r"'gc' is not a built-in action; accepted: \['release"),
        ({"actions": [42]}, TypeError, r"actions\[0\] must be"),
        ({"actions": "clear_caches"}, TypeError, "not a single string"),
        ({"name": ""}, ValueError, "name must be a non-empty str"),
        ({"name": 3}, TypeError, "name must be a non-empty str or None"),
        ({"source": "swap"}, ValueError, "source must be one of 'auto', 'rss', 'cgroup'"),
        ({"on_hard_limit": "stop"}, TypeError, "on_hard_limit must be callable"),
        ({"usage": 42}, TypeError, "usage must be callable"),
        ({"capacity": -1}, ValueError, r"capacity must be an int \(bytes\) >= 1"),
        ({"capacity": "8GiB"}, TypeError, "capacity must be bytes"),
    ],
)
def test_bad_arguments_are_rejected_clearly(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    args: dict[str, Any] = {"soft_limit": 100, "usage": lambda: 0, "capacity": 1000}
    if "hard_limit" in kwargs and kwargs["hard_limit"] is None:
        args.pop("soft_limit")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        MemoryGuard(**args)


def test_fraction_needs_a_known_capacity() -> None:
    with pytest.raises(ValueError, match="capacity is unknown"):
        MemoryGuard(soft_limit=0.5, usage=lambda: 0, capacity=lambda: None)


def test_default_source_reads_this_process() -> None:
    guard = MemoryGuard(soft_limit=1.0, name="real-source")
    result = guard.check()
    assert guard.source in ("rss", "cgroup")
    assert result.usage_bytes is not None and result.usage_bytes > 1 * MiB
    assert result.state == "ok"


def test_one_guard_per_name_and_stop_is_prompt() -> None:
    first = MemoryGuard(soft_limit=1 << 40, interval=3600, name="singleton", usage=lambda: 1)
    second = MemoryGuard(soft_limit=1 << 40, interval=3600, name="singleton", usage=lambda: 1)
    assert first.start() is first
    assert second.start() is first  # a repeated startup hook gets the running guard
    assert not second.running
    assert running_guards() == {"singleton": first}
    threads = [t for t in threading.enumerate() if t.name == "memscope-guard-singleton"]
    assert len(threads) == 1
    assert second.stop() is True and first.running  # stopping the idle twin changes nothing
    # the loop sleeps an hour between checks: stop() must wake it, not wait it out
    assert first.stop(timeout=5) is True
    assert not first.running and running_guards() == {}
    assert second.start() is second  # the name is free again
    assert second.stop(timeout=5)


def test_context_manager_and_snapshot_row() -> None:
    with MemoryGuard(soft_limit=1 << 40, interval=0.01, name="ctx", usage=lambda: 4096) as guard:
        deadline = time.monotonic() + 5
        while guard.checks_total < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        snap = memscope.snapshot(collectors=["tracked"])
    rows = {row["name"]: row for row in snap["tracked"]["objects"]}
    stats = rows["memory_guard.ctx"]["stats"]
    assert stats["running"] is True and stats["checks_total"] >= 3
    assert stats["usage_bytes"] == 4096 and stats["soft_limit_bytes"] == 1 << 40
    assert not guard.running


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_after_fork_starts_clean() -> None:
    guard = MemoryGuard(soft_limit=1 << 40, interval=0.01, name="forky", usage=lambda: 1).start()
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process may deadlock: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            fresh = MemoryGuard(soft_limit=1 << 40, interval=0.01, name="forky", usage=lambda: 1)
            ok = running_guards() == {} and not guard.running and fresh.start() is fresh
            ok = ok and fresh.running and fresh.stop(timeout=5)
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert guard.running  # the parent's guard is untouched
    assert guard.stop(timeout=5)


REAL_GUARD_RUN = r"""
import gc, logging, time
import memscope
from memscope._base.proc import rss_bytes
from memscope.guard.memory_guard import MemoryGuard

MiB = 1 << 20


class ModelCache(dict):
    "A cache that memscope can track weakly and clear."


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


log = Lines()
logging.getLogger("memscope.guard").addHandler(log)
logging.getLogger("memscope.guard").setLevel(logging.INFO)
cache = ModelCache()
memscope.track(cache, name="model_cache", clear=True)
gc.collect()
base = rss_bytes()
before = memscope.snapshot(label="before", collectors=["process", "tracked"])
for i in range(4):
    # 50 MiB each: above glibc's largest mmap threshold, so free() returns it to the OS
    cache[f"model-{i}"] = b"x" * (50 * MiB)
grown = memscope.snapshot(label="grown", collectors=["process", "tracked"])
naive = memscope.compare(before, grown)
assert naive.delta("tracked", "objects[model_cache].size_bytes") >= 200 * MiB
assert naive.delta("process", "rss_bytes") >= 150 * MiB, naive.delta("process", "rss_bytes")
soft = base + 100 * MiB
guard = MemoryGuard(soft_limit=soft, interval=0.05, name="real", source="rss")
with guard:
    deadline = time.monotonic() + 20
    while cache and time.monotonic() < deadline:
        time.sleep(0.05)
    after = memscope.snapshot(label="guarded", collectors=["process", "tracked"])
assert not cache, "the guard did not clear the cache"
assert rss_bytes() < soft, (rss_bytes(), soft)
guarded = memscope.compare(grown, after)
assert guarded.delta("tracked", "objects[model_cache].size_bytes") <= -200 * MiB
assert guarded.delta("process", "rss_bytes") <= -150 * MiB
cleared = [r for r in guard.history if r.action == "clear_caches"]
assert cleared and cleared[0].freed_bytes >= 150 * MiB, guard.history
text = "\n".join(log.lines)
assert "action clear_caches: usage" in text and "model_cache=4" in text, text
print("ok")
"""


@pytest.mark.slow
def test_real_thread_clears_real_allocations_and_rss_falls() -> None:
    """Proof: 200 MiB held in a tracked clearable cache; the guard clears it, RSS falls.

    In a fresh interpreter: a long-lived test process keeps freed memory of its own
    resident, which can serve the blocks without new pages (and keep them after).
    """
    out = subprocess.run(
        [sys.executable, "-c", REAL_GUARD_RUN],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


@pytest.mark.asyncio
async def test_asyncio_flavour_awaits_async_callbacks_on_the_loop() -> None:
    m = Meter(100)
    seen: list[tuple[str, int]] = []
    loop_thread = threading.get_ident()

    async def drain() -> str:
        await asyncio.sleep(0)
        seen.append(("drain", threading.get_ident()))
        m.usage -= 50
        return "drained"

    async def stop_accepting(reading: MemoryReading) -> None:
        seen.append(("hard", threading.get_ident()))

    guard = MemoryGuard(
        soft_limit=1000,
        hard_limit=2000,
        interval=0.01,
        name="async-flavour",
        usage=m.read,
        actions=[drain],
        on_hard_limit=stop_accepting,
    )
    async with guard as running:
        assert running is guard and guard.running
        assert running_guards() == {"async-flavour": guard}
        m.usage = 2500
        for _ in range(200):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.01)
    assert not guard.running and running_guards() == {}
    assert seen[:2] == [("drain", loop_thread), ("hard", loop_thread)]
    assert guard.history[0].detail == "str len=7 size=56 B 'drained'"


@pytest.mark.asyncio
async def test_asgi_lifespan_starts_and_stops_the_guard() -> None:
    guard = MemoryGuard(soft_limit=1 << 40, interval=0.01, name="asgi", usage=lambda: 1)
    app = object()
    async with guard.lifespan(app) as state:
        assert state is None  # Starlette merges a yielded mapping into app state; None is safe
        await asyncio.sleep(0.03)
        assert guard.running and guard.checks_total >= 1
        # a second app instance (hot reload) gets the running guard, not a second loop
        twin = MemoryGuard(soft_limit=1 << 40, interval=0.01, name="asgi", usage=lambda: 1)
        assert await twin.start_async() is guard
    assert not guard.running


def test_release_memory_action_returns_freed_heap_to_the_os() -> None:
    """Proof for the built-in release action: RSS pinned by free-but-untrimmed malloc memory."""
    from memscope.guard.release import malloc_trim_available

    if not malloc_trim_available():
        pytest.skip("needs glibc malloc_trim")
    gc.collect()
    # 1 KiB blocks come from malloc (not pymalloc); keeping every 100th leaves the freed
    # memory in glibc's free lists, resident until something trims it
    blocks = [bytes(1024) + i.to_bytes(4, "little") for i in range(200_000)]
    kept = blocks[::100]
    del blocks
    gc.collect()
    rss = _rss()
    guard = MemoryGuard(
        soft_limit=max(rss - 50 * MiB, 1 * MiB),
        actions=["release_memory"],
        source="rss",
        name="release-proof",
    )
    guard.check()
    records = [r for r in guard.history if r.action == "release_memory"]
    assert records, guard.history
    assert records[0].error is None
    assert records[0].freed_bytes >= 100 * MiB, records[0]
    assert _rss() <= rss - 100 * MiB
    del kept


def test_start_after_a_stop_that_timed_out_runs_a_new_loop() -> None:
    gate = threading.Event()
    calls: list[str] = []

    def slow() -> None:
        calls.append("slow")
        gate.wait(5)

    meter = Meter(usage=9_000)
    guard = MemoryGuard(
        usage=meter.read,
        capacity=10_000,
        soft_limit=5_000,
        interval=0.01,
        actions=[slow],
        cooldown=0.0,
        name="restart-proof",
    )
    guard.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert guard.stop(timeout=0.05) is False  # stuck in the slow action
    assert not guard.running
    checks_before = guard.memscope_stats()["checks_total"]
    assert guard.start() is guard
    gate.set()
    deadline = time.monotonic() + 5
    while (
        guard.memscope_stats()["checks_total"] < checks_before + 3 and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert guard.running
    assert guard.memscope_stats()["checks_total"] >= checks_before + 3
    assert running_guards().get("restart-proof") is guard
    assert guard.stop()
