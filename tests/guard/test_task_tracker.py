"""TaskTracker: fire-and-forget tasks held until they end, failures logged, bounded."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest

import memscope
from memscope.guard.task_tracker import TaskLimitError, TaskTracker


class TaskSet(set[asyncio.Task[Any]]):
    """The naive pattern, weakly trackable: background tasks added and never discarded."""


async def _orphan_waiter(finished: list[str]) -> None:
    # waits on a future that only this coroutine references: nothing but the task
    # itself keeps the chain alive, as with a callback that never fires
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        await fut
    except asyncio.CancelledError:
        finished.append("cancelled")
        raise
    except GeneratorExit:
        finished.append("destroyed")
        raise


@pytest.mark.asyncio
async def test_unreferenced_task_is_collected_mid_flight_tracked_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    naive_done: list[str] = []
    naive = weakref.ref(asyncio.create_task(_orphan_waiter(naive_done)))
    await asyncio.sleep(0)
    tracker = TaskTracker(name="orphans")
    tracked_done: list[str] = []
    tracked = weakref.ref(tracker.spawn(_orphan_waiter(tracked_done)))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    assert naive() is None  # the naive task vanished while pending
    assert naive_done == ["destroyed"]
    assert "Task was destroyed but it is pending" in caplog.text
    assert tracked() is not None and not tracked().done()  # type: ignore[union-attr]
    assert await tracker.close(timeout=1) == 0
    assert tracked_done == ["cancelled"]
    assert len(tracker) == 0 and tracker.cancelled_total == 1


@pytest.mark.asyncio
async def test_failure_is_logged_once_and_not_left_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[BaseException] = []
    tracker = TaskTracker(name="failing", on_error=lambda task, exc: seen.append(exc))

    async def boom() -> None:
        raise ValueError("bad row 7")

    with caplog.at_level(logging.ERROR):
        task = tracker.spawn(boom(), name="import-row-7")
        await asyncio.wait({task})
        del task
        gc.collect()
    assert "task 'import-row-7' of TaskTracker 'failing' failed" in caplog.text
    assert "ValueError: bad row 7" in caplog.text
    assert "never retrieved" not in caplog.text
    assert [str(e) for e in seen] == ["bad row 7"]
    assert tracker.failed_total == 1 and len(tracker) == 0


@pytest.mark.asyncio
async def test_limit_rejects_spawn_and_submit_waits_for_a_slot() -> None:
    tracker = TaskTracker(limit=2, name="limited")
    gate = asyncio.Event()
    order: list[str] = []

    async def job(tag: str) -> None:
        await gate.wait()
        order.append(tag)

    tracker.spawn(job("a"))
    tracker.spawn(job("b"))
    assert tracker.full
    rejected = job("c")
    with pytest.raises(TaskLimitError, match="limit=2"):
        tracker.spawn(rejected)
    # the rejected coroutine was closed: no "never awaited" RuntimeWarning (warnings are errors)
    assert rejected.cr_frame is None
    submit = asyncio.create_task(tracker.submit(job("d")))
    await asyncio.sleep(0.01)
    assert not submit.done() and len(tracker) == 2  # back-pressure: it waits
    gate.set()
    task_d = await asyncio.wait_for(submit, 1)
    await task_d
    assert sorted(order) == ["a", "b", "d"]
    assert tracker.peak == 2 and tracker.rejected_total == 1
    assert await tracker.join(timeout=1)


@pytest.mark.asyncio
async def test_submit_timeout_and_close_wakes_waiters() -> None:
    tracker = TaskTracker(limit=1, name="timeouts")
    gate = asyncio.Event()
    tracker.spawn(gate.wait())
    with pytest.raises(TaskLimitError, match=r"within 0\.01 s"):
        await tracker.submit(gate.wait(), timeout=0.01)
    waiting = asyncio.create_task(tracker.submit(gate.wait()))
    await asyncio.sleep(0.01)
    assert await tracker.close(timeout=1) == 0
    with pytest.raises(RuntimeError, match="is closed"):
        await waiting
    with pytest.raises(RuntimeError, match="is closed"):
        tracker.spawn(gate.wait())


@pytest.mark.asyncio
async def test_close_cancels_and_reports_tasks_that_ignore_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = TaskTracker(name="stubborn")
    cleaned: list[str] = []

    async def polite() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("polite")

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # cleanup that outlives close()'s timeout
            cleaned.append("stubborn")

    tracker.spawn(polite())
    tracker.spawn(stubborn(), name="stubborn-1")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING):
        hung = await tracker.close(timeout=0.02)
    assert hung == 1
    assert "ignored cancellation" in caplog.text and "stubborn-1" in caplog.text
    assert cleaned == ["polite"]
    assert await tracker.join(timeout=2)
    assert cleaned == ["polite", "stubborn"]


@pytest.mark.asyncio
async def test_growth_warning_with_a_fake_clock(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    tracker = TaskTracker(name="growing", growth_interval=10, growth_window=4, clock=lambda: now[0])
    gate = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="memscope.guard"):
        for _ in range(3):
            tracker.spawn(gate.wait())  # three spawns within one interval: one check
        for _ in range(3):
            now[0] += 10
            tracker.spawn(gate.wait())
    assert tracker.growth_warnings_total == 1
    assert "live tasks only grew over the last 4 checks (1 -> 6)" in caplog.text
    # a drop breaks the streak: no second warning
    gate.set()
    await tracker.join(timeout=1)
    gate.clear()
    for _ in range(4):
        now[0] += 10
        assert tracker.check_growth() is False
    assert tracker.growth_warnings_total == 1
    await tracker.close()


@pytest.mark.asyncio
async def test_naive_task_set_grows_tracker_does_not() -> None:
    """Proof, with the ``tasks`` and ``tracked`` sections: 1,000 finished tasks."""
    naive = TaskSet()
    memscope.track(naive, name="naive_background_tasks")
    tracker = TaskTracker(name="tracked_background_tasks")

    async def job() -> None:
        await asyncio.sleep(0)

    try:
        gc.collect()  # finished tasks of earlier tests must not vanish mid-measurement
        before = memscope.snapshot(label="before", collectors=["tasks", "tracked"])
        for _ in range(1000):
            naive.add(asyncio.create_task(job()))  # the missing add_done_callback(discard)
        await asyncio.gather(*naive)
        mid = memscope.snapshot(label="naive", collectors=["tasks", "tracked"])
        for _ in range(1000):
            tracker.spawn(job())
        assert await tracker.join(timeout=5)
        after = memscope.snapshot(label="tracker", collectors=["tasks", "tracked"])
    finally:
        memscope.untrack(naive)
    naive_diff = memscope.compare(before, mid)
    tracker_diff = memscope.compare(mid, after)
    assert naive_diff.delta("tracked", "objects[naive_background_tasks].len") == 1000
    assert naive_diff.delta("tasks", "done") >= 1000  # finished tasks still referenced
    assert tracker_diff.delta("tracked", "objects[tracked_background_tasks].len") == 0
    assert tracker_diff.delta("tasks", "done") <= 0
    rows = {row["name"]: row for row in after["tracked"]["objects"]}
    stats = rows["tracked_background_tasks"]["stats"]
    assert stats["spawned_total"] == 1000 and stats["live"] == 0
    naive.clear()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"limit": 0}, ValueError, "limit must be an int >= 1"),
        ({"limit": 2.5}, TypeError, "limit must be an int or None"),
        ({"name": ""}, ValueError, "name must be a non-empty str"),
        ({"name": 3}, TypeError, "name must be a non-empty str or None"),
        ({"on_error": 3}, TypeError, "on_error must be callable"),
        ({"growth_interval": -1}, ValueError, "growth_interval"),
        ({"growth_interval": "60"}, TypeError, "growth_interval"),
        ({"growth_window": 1}, ValueError, "growth_window must be an int >= 2"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TaskTracker(**kwargs)


def test_spawn_outside_a_loop_is_a_clear_error() -> None:
    tracker = TaskTracker(name="no_loop")

    async def job() -> None:
        return None

    coro = job()
    with pytest.raises(RuntimeError, match="running event loop"):
        tracker.spawn(coro)
    assert coro.cr_frame is None
    with pytest.raises(TypeError, match="coroutine object"):
        tracker.spawn(job)  # type: ignore[arg-type]
