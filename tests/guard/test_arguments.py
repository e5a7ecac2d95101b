"""Every public argument of the guard primitives is checked at the call, by the one rule: a
wrong type is a TypeError, a value out of range (NaN and infinity included) a ValueError, and
both name the argument. Nothing fails later (a wait that never ends, an error after a task
started)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from memscope.guard.keyed_locks import AsyncKeyedLocks, KeyedLocks
from memscope.guard.memory_guard import MemoryGuard
from memscope.guard.release import MemoryReleaser
from memscope.guard.task_tracker import TaskTracker

BAD_TIMEOUTS: list[tuple[Any, type[Exception]]] = [
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-1.0, ValueError),
    ("1", TypeError),
    (True, TypeError),
]
TIMEOUT_IDS = ["nan", "inf", "negative", "str", "bool"]


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_keyed_locks_acquire_checks_timeout_uncontended(timeout: Any, error: type) -> None:
    locks = KeyedLocks(name="args-uncontended")
    with pytest.raises(error, match="timeout"):
        locks.acquire("k", timeout)
    assert len(locks) == 0  # nothing held or left behind


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_keyed_locks_acquire_checks_timeout_contended(timeout: Any, error: type) -> None:
    locks = KeyedLocks(name="args-contended")
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with locks("k"):
            held.set()
            done.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(error, match="timeout"):
            locks.acquire("k", timeout)
        assert locks.memscope_stats()["contended_total"] == 0  # refused before it counted
    finally:
        done.set()
        t.join()
    assert len(locks) == 0


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_async_keyed_locks_check_timeout_in_acquire(timeout: Any, error: type) -> None:
    async def main() -> None:
        locks = AsyncKeyedLocks(name="args-async")
        async with locks("k"):
            # contended: a NaN timeout waited forever here
            with pytest.raises(error, match="timeout"):
                await asyncio.wait_for(locks.acquire("k", timeout), 10)
        with pytest.raises(error, match="timeout"):
            await asyncio.wait_for(locks.acquire("k", timeout), 10)
        assert len(locks) == 0

    asyncio.run(main())


async def _sleeper() -> None:
    await asyncio.sleep(30)


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_task_tracker_submit_checks_timeout(timeout: Any, error: type) -> None:
    async def main() -> None:
        tracker = TaskTracker(limit=1, name="args-submit")
        tracker.spawn(_sleeper())
        coro = _sleeper()
        with pytest.raises(error, match="timeout"):
            # full: a NaN timeout waited for a slot forever
            await asyncio.wait_for(tracker.submit(coro, timeout=timeout), 10)
        assert coro.cr_frame is None  # closed: no "never awaited" warning either
        assert tracker.rejected_total == 0  # a bad call, not a rejection by the limit
        await tracker.close(timeout=5)

    asyncio.run(main())


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_task_tracker_join_checks_timeout(timeout: Any, error: type) -> None:
    async def main() -> None:
        tracker = TaskTracker(name="args-join")
        tracker.spawn(_sleeper())
        with pytest.raises(error, match="timeout"):
            await asyncio.wait_for(tracker.join(timeout), 10)
        await tracker.close(timeout=5)

    asyncio.run(main())


def test_task_tracker_spawn_checks_name_before_starting() -> None:
    async def main() -> None:
        tracker = TaskTracker(name="args-name")
        for method in ("spawn", "submit"):
            coro = _sleeper()
            with pytest.raises(TypeError, match="name"):
                result = getattr(tracker, method)(coro, name=5)
                if asyncio.iscoroutine(result):
                    await result
            assert coro.cr_frame is None
        assert len(tracker) == 0 and tracker.spawned_total == 0

    asyncio.run(main())


CONSTRUCTORS: list[tuple[str, Callable[[Any], object]]] = [
    ("clock", lambda v: TaskTracker(clock=v)),
    ("logger", lambda v: TaskTracker(logger=v)),
    ("logger", lambda v: MemoryGuard(hard_limit=1 << 40, logger=v)),
    ("clock", lambda v: MemoryReleaser(clock=v)),
    ("rss", lambda v: MemoryReleaser(rss=v)),
    ("trim", lambda v: MemoryReleaser(trim=v)),
]
IDS = ["TaskTracker-clock", "TaskTracker-logger", "MemoryGuard-logger"] + [
    f"MemoryReleaser-{a}" for a in ("clock", "rss", "trim")
]


@pytest.mark.parametrize(("arg", "make"), CONSTRUCTORS, ids=IDS)
def test_injected_collaborators_are_checked_at_construction(
    arg: str, make: Callable[[Any], object]
) -> None:
    with pytest.raises(TypeError, match=rf"^{arg} must be .*, got int$"):
        make(5)


def test_a_task_tracker_with_a_bad_clock_failed_after_the_task_started() -> None:
    # the failure this replaces: spawn() started the task, then called clock() and raised
    async def main() -> None:
        with pytest.raises(TypeError, match="clock"):
            TaskTracker(clock=5)  # type: ignore[arg-type]

    asyncio.run(main())


def test_loggers_and_adapters_are_accepted() -> None:
    import logging

    adapter = logging.LoggerAdapter(logging.getLogger("x"), {})
    TaskTracker(logger=adapter)  # type: ignore[arg-type]
    TaskTracker(logger=logging.getLogger("x"))
    MemoryGuard(hard_limit=1 << 40, logger=adapter)  # type: ignore[arg-type]
