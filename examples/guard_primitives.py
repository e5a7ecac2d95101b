"""The five guard primitives of part two, each next to the naive code it replaces.

Run: python examples/guard_primitives.py  (a few seconds, about 300 MiB at its peak)
Every number printed is measured with memscope's own snapshot()/compare().
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import random
import threading
import time

import memscope
from memscope._base.proc import rss_bytes
from memscope._base.units import format_bytes
from memscope.guard.keyed_locks import KeyedLocks
from memscope.guard.memory_guard import MemoryGuard
from memscope.guard.sampling import Reservoir
from memscope.guard.summary import summarize
from memscope.guard.task_tracker import TaskTracker

MiB = 1 << 20


def tracked_row(snap: memscope.Snapshot, name: str) -> dict[str, object]:
    """The row of one tracked object in a snapshot."""
    return next(row for row in snap["tracked"]["objects"] if row["name"] == name)


def growth(before: memscope.Snapshot, after: memscope.Snapshot, name: str, field: str) -> float:
    """How much one tracked object's field grew between two snapshots."""
    return memscope.compare(before, after).delta("tracked", f"objects[{name}].{field}")


class LockTable(collections.defaultdict):  # type: ignore[type-arg]
    """defaultdict(threading.Lock), weakly trackable."""


def keyed_locks() -> None:
    naive = memscope.track(LockTable(threading.Lock), name="naive_locks")
    keyed = KeyedLocks(name="keyed_locks")
    before = memscope.snapshot(collectors=["tracked"])
    for tenant in range(10_000):
        with naive[f"tenant-{tenant}"]:
            pass
        with keyed(f"tenant-{tenant}"):
            pass
    after = memscope.snapshot(collectors=["tracked"])
    print("KeyedLocks, 10,000 tenants:")
    print(
        f"  defaultdict(Lock): +{growth(before, after, 'naive_locks', 'len'):,.0f} entries, "
        f"+{format_bytes(growth(before, after, 'naive_locks', 'size_bytes'))}"
    )
    print(f"  KeyedLocks:        {len(keyed)} entries (peak {keyed.memscope_stats()['peak_keys']})")


class TaskSet(set):  # type: ignore[type-arg]
    """A set of background tasks, weakly trackable."""


async def task_tracker() -> None:
    async def job() -> None:
        await asyncio.sleep(0)

    naive = memscope.track(TaskSet(), name="naive_tasks")
    tracker = TaskTracker(name="tracked_tasks")
    gc.collect()
    before = memscope.snapshot(collectors=["tasks"])
    for _ in range(5000):
        naive.add(asyncio.create_task(job()))  # never discarded
    await asyncio.gather(*naive)
    mid = memscope.snapshot(collectors=["tasks"])
    for _ in range(5000):
        tracker.spawn(job())
    await tracker.join()
    after = memscope.snapshot(collectors=["tasks"])
    print("TaskTracker, 5,000 finished fire-and-forget tasks:")
    naive_done = memscope.compare(before, mid).delta("tasks", "done")
    print(f"  set.add(create_task()): +{naive_done:,.0f} finished tasks still referenced")
    print(
        f"  TaskTracker.spawn():    {memscope.compare(mid, after).delta('tasks', 'done'):+,.0f} "
        f"(live {len(tracker)}, spawned {tracker.spawned_total:,})"
    )
    naive.clear()
    await tracker.close()


class Messages(list):  # type: ignore[type-arg]
    """Formatted log messages kept by a handler, weakly trackable."""


def summaries() -> None:
    payload = random.Random(0).randbytes(4 * MiB)
    naive = memscope.track(Messages(), name="naive_messages")
    bounded = memscope.track(Messages(), name="summarized_messages")
    before = memscope.snapshot(collectors=["tracked"])
    for _ in range(10):
        naive.append(f"bad payload: {payload!r}")
        bounded.append(f"bad payload: {summarize(payload)}")
    after = memscope.snapshot(collectors=["tracked"])
    print("summarize(), 10 error messages about a 4 MiB payload:")
    naive_size = format_bytes(growth(before, after, "naive_messages", "size_bytes"))
    bounded_size = format_bytes(growth(before, after, "summarized_messages", "size_bytes"))
    print(f"  f'{{payload!r}}':         +{naive_size}")
    print(f"  summarize(payload):     +{bounded_size}")
    print(f"  e.g. {bounded[0][:110]}...")
    naive.clear()


def rows(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield i.to_bytes(8, "little") * 128  # a 1 KiB row


def sampling() -> None:
    n, k = 100_000, 500
    naive = memscope.track(Messages(), name="all_rows")
    reservoir: Reservoir[bytes] = memscope.track(Reservoir(k, seed=1), name="reservoir")
    before = memscope.snapshot(collectors=["tracked"])
    naive.extend(rows(n))
    random.Random(1).sample(naive, k)
    reservoir.extend(rows(n))
    after = memscope.snapshot(collectors=["tracked"])
    print(f"sample(), {k} of {n:,} rows of 1 KiB:")
    all_rows = format_bytes(growth(before, after, "all_rows", "size_bytes"))
    print(f"  random.sample(list(rows), k): +{all_rows}")
    kept = format_bytes(growth(before, after, "reservoir", "size_bytes"))
    print(f"  sample(rows, k):              +{kept}")
    naive.clear()


class ModelCache(dict):  # type: ignore[type-arg]
    """A clearable cache of large values."""


def memory_guard() -> None:
    cache = memscope.track(ModelCache(), name="model_cache", clear=True)
    gc.collect()
    base = rss_bytes()
    if base is None:
        print("MemoryGuard: this platform's RSS cannot be read; skipped")
        return
    before = memscope.snapshot(collectors=["process"])
    for i in range(4):
        cache[f"model-{i}"] = b"x" * (50 * MiB)
    grown = memscope.snapshot(collectors=["process"])
    guard = MemoryGuard(soft_limit=base + 100 * MiB, interval=0.05, name="example", source="rss")
    with guard:
        deadline = time.monotonic() + 10
        while cache and time.monotonic() < deadline:
            time.sleep(0.05)
    after = memscope.snapshot(collectors=["process"])
    grew = memscope.compare(before, grown).delta("process", "rss_bytes")
    fell = memscope.compare(grown, after).delta("process", "rss_bytes")
    print(f"MemoryGuard, soft limit = RSS at start + 100 MiB = {format_bytes(base + 100 * MiB)}:")
    print(f"  200 MiB cached, no guard: RSS +{format_bytes(grew)}")
    print(f"  guard started:            RSS {format_bytes(fell)}")
    for record in guard.history:
        print(
            f"    action {record.action}: {format_bytes(record.usage_before_bytes)} -> "
            f"{format_bytes(record.usage_after_bytes)}"
            + (f" ({record.error})" if record.error else f" ({record.detail})")
        )


def main() -> int:
    logging.basicConfig(level=logging.CRITICAL)  # the guard logs each action at WARNING
    keyed_locks()
    asyncio.run(task_tracker())
    summaries()
    sampling()
    memory_guard()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
