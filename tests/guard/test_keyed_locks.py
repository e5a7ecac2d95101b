"""KeyedLocks / AsyncKeyedLocks: per-key locks whose table shrinks back to empty."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

import pytest

import memscope
from memscope.guard.keyed_locks import AsyncKeyedLocks, KeyedLocks


class LockTable(collections.defaultdict[str, threading.Lock]):
    """The naive pattern, weakly trackable: one lock per key ever seen."""


def test_same_key_is_serialised_across_real_threads() -> None:
    locks = KeyedLocks()
    counter = {"n": 0}

    def work() -> None:
        for _ in range(200):
            with locks("shared"):
                value = counter["n"]
                time.sleep(0)  # yield to other threads inside the critical section
                counter["n"] = value + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter["n"] == 800
    assert len(locks) == 0


def test_different_keys_do_not_block_each_other() -> None:
    locks = KeyedLocks()
    inside_b = threading.Event()
    with locks("a"):
        # another thread takes "b" while this one holds "a"; a shared lock would time out
        def take_b() -> None:
            with locks("b", timeout=5):
                inside_b.set()

        t = threading.Thread(target=take_b)
        t.start()
        assert inside_b.wait(5)
        t.join()
        assert "a" in locks and "b" not in locks
    assert len(locks) == 0


def test_entry_lives_while_held_or_waited_and_then_goes() -> None:
    locks = KeyedLocks()
    holding = threading.Event()
    release = threading.Event()
    waiter_done = threading.Event()

    def holder() -> None:
        with locks("k"):
            holding.set()
            release.wait(5)

    def waiter() -> None:
        with locks("k"):
            pass
        waiter_done.set()

    h = threading.Thread(target=holder)
    h.start()
    assert holding.wait(5)
    w = threading.Thread(target=waiter)
    w.start()
    deadline = time.monotonic() + 5
    while locks.memscope_stats()["contended_total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(locks) == 1 and locks.locked("k")
    release.set()
    h.join()
    w.join()
    assert waiter_done.is_set()
    assert len(locks) == 0 and not locks.locked("k")
    stats = locks.memscope_stats()
    assert stats["acquisitions_total"] == 2 and stats["peak_keys"] == 1


def test_timeout_gives_up_and_leaves_no_waiter_behind() -> None:
    locks = KeyedLocks()
    assert locks.acquire("k")
    result: dict[str, Any] = {}

    def try_it() -> None:
        result["got"] = locks.acquire("k", timeout=0.05)
        try:
            with locks("k", timeout=0):
                pass
        except TimeoutError as exc:
            result["error"] = str(exc)

    t = threading.Thread(target=try_it)
    t.start()
    t.join()
    assert result["got"] is False
    assert "could not acquire the lock of 'k'" in result["error"]
    assert len(locks) == 1  # only the holder counts now
    locks.release("k")
    assert len(locks) == 0


def test_reentrant_flavour() -> None:
    locks = KeyedLocks(reentrant=True)
    with locks("k"), locks("k"):
        assert len(locks) == 1
    assert len(locks) == 0


def test_bad_input_is_rejected_without_changing_state() -> None:
    locks = KeyedLocks()
    with pytest.raises(TypeError, match="unhashable"):
        locks(["a"])  # type: ignore[arg-type]
    # one rule: a value out of range is a ValueError, a wrong type a TypeError
    with pytest.raises(ValueError, match=r"timeout must be a finite number of seconds >= 0"):
        locks("a", timeout=-1)
    with pytest.raises(TypeError, match="timeout must be a finite number of seconds or None"):
        locks("a", timeout="1")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not held"):
        locks.release("never")
    with pytest.raises(TypeError, match="reentrant must be True or False"):
        KeyedLocks(reentrant=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        KeyedLocks(name="")
    with pytest.raises(TypeError, match="name must be a non-empty str or None"):
        KeyedLocks(name=3)  # type: ignore[arg-type]
    assert len(locks) == 0


def test_exception_inside_the_block_releases_and_drops_the_entry() -> None:
    locks = KeyedLocks()
    with pytest.raises(ZeroDivisionError), locks("k"):
        1 / 0  # noqa: B018
    assert len(locks) == 0
    assert locks.acquire("k", timeout=0)
    locks.release("k")


def test_naive_lock_table_grows_keyed_locks_do_not() -> None:
    """Proof: a lock per tenant, 2,000 tenants, measured in the tracked section."""
    naive = LockTable(threading.Lock)
    keyed = KeyedLocks(name="keyed_tenant_locks")
    memscope.track(naive, name="naive_tenant_locks")
    try:
        before = memscope.snapshot(label="before", collectors=["tracked"])
        for tenant in range(2000):
            with naive[f"tenant-{tenant}"]:
                pass
            with keyed(f"tenant-{tenant}"):
                pass
        after = memscope.snapshot(label="after", collectors=["tracked"])
    finally:
        memscope.untrack(naive)
        memscope.untrack(keyed)
    diff = memscope.compare(before, after)
    assert diff.delta("tracked", "objects[naive_tenant_locks].len") == 2000
    assert diff.delta("tracked", "objects[naive_tenant_locks].size_bytes") > 100_000
    assert diff.delta("tracked", "objects[keyed_tenant_locks].len") == 0
    rows = {row["name"]: row for row in after["tracked"]["objects"]}
    assert rows["keyed_tenant_locks"]["stats"]["acquisitions_total"] == 2000
    assert rows["keyed_tenant_locks"]["stats"]["peak_keys"] == 1


@pytest.mark.asyncio
async def test_async_same_key_is_serialised_and_table_empties() -> None:
    locks = AsyncKeyedLocks()
    active: collections.Counter[str] = collections.Counter()
    peak: collections.Counter[str] = collections.Counter()

    async def work(key: str) -> None:
        async with locks(key):
            active[key] += 1
            peak[key] = max(peak[key], active[key])
            await asyncio.sleep(0.001)
            active[key] -= 1

    await asyncio.gather(*(work(f"profile-{i % 3}") for i in range(30)))
    assert dict(peak) == {"profile-0": 1, "profile-1": 1, "profile-2": 1}
    assert len(locks) == 0
    assert locks.memscope_stats()["acquisitions_total"] == 30


@pytest.mark.asyncio
async def test_async_cancelled_waiter_leaves_no_entry() -> None:
    locks = AsyncKeyedLocks()
    await locks.acquire("k")
    waiter = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    assert len(locks) == 1 and locks.memscope_stats()["contended_total"] == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    locks.release("k")
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_async_timeout() -> None:
    locks = AsyncKeyedLocks()
    async with locks("k"):
        assert await locks.acquire("k", timeout=0.01) is False
        with pytest.raises(TimeoutError, match="'k'"):
            async with locks("k", timeout=0.01):
                pass
        assert len(locks) == 1
    assert len(locks) == 0
    with pytest.raises(RuntimeError, match="not held"):
        locks.release("k")


@pytest.mark.asyncio
async def test_async_naive_table_grows_keyed_does_not() -> None:
    naive: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
    keyed = AsyncKeyedLocks()
    for tenant in range(500):
        async with naive[f"t{tenant}"]:
            pass
        async with keyed(f"t{tenant}"):
            pass
    assert len(naive) == 500
    assert len(keyed) == 0
