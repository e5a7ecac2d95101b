"""The tasks collector: real loops, real tasks, one loop in a background thread."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import memscope
from memscope.collectors.tasks import TasksCollector, TasksSection


async def tasks_test_sleeper() -> None:
    await asyncio.sleep(60)


async def tasks_test_failer() -> None:
    raise ValueError("nobody will look at this")


async def tasks_test_quick() -> int:
    return 1


def row(data: dict[str, Any], suffix: str) -> dict[str, Any]:
    for r in data["by_coroutine"]:
        if r["coroutine"].endswith(suffix):
            return r  # type: ignore[no-any-return]
    return {"coroutine": suffix, "count": 0, "done": 0}


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)  # also retrieves every exception


def test_asyncio_never_imported_means_zero_and_no_import() -> None:
    code = (
        "import sys, memscope\n"
        "from memscope.collectors.tasks import TasksCollector\n"
        "d = TasksCollector().collect()\n"
        "memscope.snapshot()\n"
        "print(d['count'], d['asyncio_imported'], 'asyncio' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["0", "False", "False"]


@pytest.mark.asyncio
async def test_real_tasks_counted_by_state_and_coroutine() -> None:
    collector = TasksCollector()
    before = collector.collect()
    sleepers = [asyncio.create_task(tasks_test_sleeper()) for _ in range(3)]
    failers = [asyncio.create_task(tasks_test_failer()) for _ in range(2)]
    quick = asyncio.create_task(tasks_test_quick())
    await asyncio.sleep(0.01)  # failers and quick run to completion, sleepers wait
    try:
        data = collector.collect()
        assert row(data, "tasks_test_sleeper") == {
            "coroutine": f"{__name__}.tasks_test_sleeper",  # the module, then the qualname
            "count": 3,
            "done": 0,
        }
        assert row(data, "tasks_test_failer")["done"] == 2
        # finished, a coroutine has no frame: its module comes from its code's file, and
        # its row keeps the name it had while it ran
        assert row(data, "tasks_test_failer")["coroutine"] == f"{__name__}.tasks_test_failer"
        assert row(data, "tasks_test_quick")["done"] == 1
        assert data["pending"] - before["pending"] == 3
        assert data["done"] - before["done"] == 3  # two failed, one returned: still referenced
        assert data["done_unawaited"] - before["done_unawaited"] == 2
        assert data["count"] == data["pending"] + data["done"]
        assert data["loops"] >= 1
        # looking must not count as retrieving: the tasks still hold their unretrieved error
        assert collector.collect()["done_unawaited"] == data["done_unawaited"]
        assert isinstance(failers[0].exception(), ValueError)  # now someone looked
        assert collector.collect()["done_unawaited"] == data["done_unawaited"] - 1
        assert quick.result() == 1
    finally:
        await cancel_all([*sleepers, *failers])


@pytest.fixture
def background_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running forever in a daemon thread; stopped and closed afterwards."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bg-loop", daemon=True)
    thread.start()
    yield loop

    async def shutdown() -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await cancel_all(others)

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_sees_tasks_of_a_loop_in_another_thread(
    background_loop: asyncio.AbstractEventLoop,
) -> None:
    async def spawn() -> list[asyncio.Task[Any]]:
        tasks = [asyncio.create_task(tasks_test_sleeper()) for _ in range(4)]
        tasks.append(asyncio.create_task(tasks_test_failer()))
        await asyncio.sleep(0.01)
        return tasks

    held = asyncio.run_coroutine_threadsafe(spawn(), background_loop).result(timeout=10)
    data = TasksCollector().collect()  # called from the main thread, no loop running here
    assert row(data, "tasks_test_sleeper")["count"] == 4
    assert row(data, "tasks_test_failer")["done"] == 1
    assert data["done_unawaited"] >= 1
    assert data["loops"] >= 1
    with pytest.raises(RuntimeError):
        asyncio.all_tasks()  # asyncio's own view needs a loop running in this thread
    del held


def test_loops_in_two_threads_are_both_counted(
    background_loop: asyncio.AbstractEventLoop,
) -> None:
    async def spawn() -> asyncio.Task[None]:
        return asyncio.create_task(tasks_test_sleeper())

    held = asyncio.run_coroutine_threadsafe(spawn(), background_loop).result(timeout=10)

    async def main() -> dict[str, Any]:
        mine = asyncio.create_task(tasks_test_sleeper())
        await asyncio.sleep(0)
        try:
            return TasksCollector().collect()
        finally:
            await cancel_all([mine])

    data = asyncio.run(main())
    assert data["loops"] >= 2
    assert row(data, "tasks_test_sleeper")["count"] == 2
    del held


@pytest.mark.asyncio
async def test_by_coroutine_is_bounded() -> None:
    tasks = [asyncio.create_task(tasks_test_sleeper()) for _ in range(3)]
    tasks += [asyncio.create_task(tasks_test_quick()) for _ in range(2)]
    await asyncio.sleep(0)
    try:
        data = TasksCollector(top=1).collect()
        assert len(data["by_coroutine"]) == 1
        # the most tasks
        assert data["by_coroutine"][0]["coroutine"] == f"{__name__}.tasks_test_sleeper"
        assert data["coroutines"] >= 2
        assert data["count"] >= 5
    finally:
        await cancel_all(tasks)


@pytest.mark.asyncio
async def test_round_trip_compare_and_summary() -> None:
    a = memscope.snapshot(label="a", collectors=["tasks"])
    tasks = [asyncio.create_task(tasks_test_sleeper()) for _ in range(5)]
    tasks.append(asyncio.create_task(tasks_test_failer()))
    await asyncio.sleep(0.01)
    try:
        b = memscope.snapshot(label="b", collectors=["tasks"])
        section = b["tasks"]
        assert isinstance(section, TasksSection)
        json.dumps(b.to_dict())
        assert memscope.Snapshot.from_json(b.to_json()) == b
        diff = memscope.compare(a, b)
        assert not diff.errors
        assert diff.delta("tasks", f"by_coroutine[{__name__}.tasks_test_sleeper].count") == 5
        assert diff.delta("tasks", "done_unawaited") == 1
        lines = section.summary_lines()
        assert 1 <= len(lines) <= 6
        assert "1 with an exception never retrieved" in lines[0]
        assert any(line.strip().endswith("tasks_test_sleeper") for line in lines[1:])
    finally:
        await cancel_all(tasks)


@pytest.mark.parametrize(("top", "error"), [(0, ValueError), (5000, ValueError), ("3", TypeError)])
def test_bad_top_is_named(top: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="top"):
        TasksCollector(top=top)  # type: ignore[arg-type]
