"""The one driver: the runs it asks for, sync and async alike, and how a run's failure ends it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import memscope
from memscope.testing import assert_no_growth, assert_no_growth_async
from memscope.testing._driver import check_steps
from memscope.testing.harness import CheckOptions, run_check

# max_rounds = rounds: no measuring on while a series is unclear, so the runs are exact
FAST: dict[str, Any] = {"warmup": 1, "rounds": 3, "census": False, "max_rounds": 3}
MEASURED = [1, 2, 3, 4]  # warmup 1 + rounds 3
TRACED = [5, 6, 7, 8]  # rounds + 1 more under tracemalloc, after a leak verdict


def test_steps_ask_for_each_run_in_order() -> None:
    opts = CheckOptions.build(warmup=2, rounds=2, census=False, max_rounds=2)
    steps = check_steps(opts, label="x")
    asked = [next(steps)]
    with pytest.raises(StopIteration) as stop:
        while True:
            asked.append(steps.send(None))
    assert asked == [1, 2, 3, 4]
    assert stop.value.value.label == "x" and not stop.value.value.leaked


def test_sync_and_async_drivers_ask_for_the_same_runs() -> None:
    runs_sync: list[int] = []
    runs_async: list[int] = []
    kept: list[object] = []

    def leak_sync(i: int) -> None:
        runs_sync.append(i)
        kept.append(bytearray(64))

    async def leak_async(i: int) -> None:
        runs_async.append(i)
        kept.append(bytearray(64))

    report = run_check(leak_sync, CheckOptions.build(**FAST), label="sync")
    assert report.leaked and report.sites
    assert runs_sync == MEASURED + TRACED

    from memscope.testing._driver import run_check_async

    async def main() -> Any:
        return await run_check_async(leak_async, CheckOptions.build(**FAST), label="async")

    report = asyncio.run(main())
    assert report.leaked and report.sites
    assert runs_async == MEASURED + TRACED


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failing_measured_run_ends_the_check_with_its_error(kind: str) -> None:
    runs: list[int] = []

    def boom() -> None:
        runs.append(1)
        if len(runs) == 2:
            raise KeyError("run 2")

    async def aboom() -> None:
        boom()

    with pytest.raises(KeyError, match="run 2"):
        if kind == "sync":
            assert_no_growth(boom, **FAST)
        else:
            asyncio.run(assert_no_growth_async(aboom, **FAST))
    assert len(runs) == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failing_traced_run_costs_only_the_sites(kind: str) -> None:
    kept: list[object] = []

    def leak() -> None:
        kept.append(object())
        if len(kept) == 6:  # the second run of the traced pass
            raise RuntimeError("traced run")

    async def aleak() -> None:
        leak()

    with pytest.raises(memscope.MemoryGrowthError) as info:
        if kind == "sync":
            assert_no_growth(leak, **FAST)
        else:
            asyncio.run(assert_no_growth_async(aleak, **FAST))
    report = info.value.report
    assert report.sites == []
    assert "traced pass failed: RuntimeError: traced run" in report.noise
    assert len(kept) == 6


def test_async_warnings_are_shown_for_the_first_run_only() -> None:
    import warnings

    async def warns() -> None:
        warnings.warn("once", UserWarning, stacklevel=1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(assert_no_growth_async(warns, **FAST))
    assert [str(w.message) for w in caught] == ["once"]


def test_no_growth_uses_the_steps_with_one_run_and_no_traced_pass() -> None:
    kept: list[object] = []
    with (
        pytest.raises(memscope.MemoryGrowthError) as info,
        memscope.testing.no_growth(trace=False, census=False),
    ):
        kept.append(bytearray(10_000))
    report = info.value.report
    assert (report.warmup, report.rounds) == (0, 1)
    assert not report.tracing and report.sites == []


def test_measuring_on_keeps_nothing_of_the_checks_own() -> None:
    # one object kept by the last planned run (run 8): the blocks series is unclear, so
    # the check measures on; every extra round must then read exactly flat (the driver's
    # time budget was once a float made after the planned runs: one block kept in the
    # first extra round, read as a second step, which cost the check ten more rounds; it
    # is a new float only when the planned runs took over half a second, hence the sleep)
    slot: list[object | None] = [None]

    def run_once(i: int) -> None:
        time.sleep(0.08)
        if i == 8:
            slot[0] = object()

    report = run_check(run_once, CheckOptions.build(), label="one late object")
    blocks = report.deltas["blocks"]
    assert blocks[4] >= 1 and blocks[5:] == [0] * (len(blocks) - 5), blocks
    assert report.rounds > 5 and not report.leaked, report.format()


def test_types_the_census_first_meets_at_the_baseline_are_not_growth() -> None:
    # the last warmup run keeps instances of builtin types the screen's census has not
    # met since the freeze: its type index learns them at the baseline, and must not
    # read as the code keeping those types in round 1 (the index was a new dict then,
    # walked by the census of what was made since the freeze: `type` +N in round 1 only,
    # which cost every such check a sixth round)
    kept: list[object] = []

    def run_once(i: int) -> None:
        if i == 3:
            kept.extend([complex(1, 2), range(3), slice(1, 2), memoryview(b"x"), reversed([])])

    report = run_check(run_once, CheckOptions.build(trace=False), label="kept at the baseline")
    assert not report.leaked and report.rounds == 5, report.format()
    assert not [line for line in report.noise if line.startswith("type:")], report.noise


def test_thread_starts_sees_threads_joined_before_the_reading() -> None:
    from memscope.testing._probe import thread_starts

    before = thread_starts()
    workers = [threading.Thread(target=time.sleep, args=(0,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert before >= 0 and thread_starts() == before + 3
    threading.Thread(target=time.sleep, args=(0,), name="named").start()
    assert thread_starts() == before + 3  # a thread named by its caller is not numbered


def test_thread_starts_sees_a_thread_pool_made_and_shut_down() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from memscope.testing._probe import thread_starts

    before = thread_starts()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(time.sleep, 0).result()
    assert thread_starts() == before + 1


def test_a_check_turns_glibcs_fastbins_off_for_its_runs_and_back_on() -> None:
    import ctypes

    from memscope._base.libc import libc_info, mallinfo2

    if not libc_info().has_mallinfo2:
        pytest.skip("fastbins and mallinfo2() are glibc's")
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def waiting() -> int:
        info = mallinfo2()
        assert info is not None
        return info["smblks"]

    def new_waiting_after_frees() -> int:
        # (other threads' arenas may keep what waited in their fastbins before: counted
        # before and after, they cancel out)
        before = waiting()
        chunks = [libc.malloc(24) for _ in range(200)]
        for chunk in chunks:
            libc.free(chunk)
        return waiting() - before

    seen: list[int] = []
    assert_no_growth(lambda: seen.append(new_waiting_after_frees()) if not seen else None)
    assert seen == [0]  # inside the check's runs no freed chunk waited in a fastbin
    assert new_waiting_after_frees() > 100  # after it, they do again
