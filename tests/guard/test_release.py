"""release_memory() against the real allocator: real heaps, real threads, a real event loop."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import memscope
from memscope._base.libc import pymalloc_stats
from memscope._base.proc import rss_bytes
from memscope.guard import release_memory, release_memory_async
from memscope.guard.release import (
    MemoryReleaser,
    ReleaseReport,
    malloc_trim_available,
    release_method,
)

needs_trim = pytest.mark.skipif(
    not malloc_trim_available(),
    reason=f"malloc_trim needs glibc; this platform releases with {release_method()!r}",
)
needs_pymalloc = pytest.mark.skipif(
    pymalloc_stats()[0] is None, reason="pymalloc is not the object allocator here"
)


def fragmented_malloc_heap(n: int = 200_000) -> list[bytes]:
    """n 1 KiB bytes objects (over 512 B: malloc, not pymalloc), every 100th kept."""
    # bytes * 1024 writes every byte, so the pages are really resident
    data = [bytes([i % 251]) * 1024 for i in range(n)]
    keep = data[::100]
    del data
    return keep


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def assert_consistent(report: ReleaseReport) -> None:
    assert not report.skipped and report.skip_reason is None
    assert report.rss_before_bytes is not None and report.rss_after_bytes is not None
    assert report.freed_bytes == report.rss_before_bytes - report.rss_after_bytes
    assert report.collected >= 0 and report.expired >= 0
    assert report.method in ("malloc_trim", "malloc_zone_pressure_relief", "none")
    assert report.seconds >= 0 and math.isfinite(report.seconds)
    assert report.explanation
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {
        "rss_before_bytes",
        "rss_after_bytes",
        "freed_bytes",
        "collected",
        "expired",
        "method",
        "trimmed",
        "seconds",
        "skipped",
        "explanation",
    }


@needs_trim
def test_release_returns_freed_malloc_heap_to_the_os() -> None:
    keep = fragmented_malloc_heap()
    report = release_memory()
    assert_consistent(report)
    assert report.method == "malloc_trim"
    assert report.trimmed is True
    # ~200 MiB was freed behind 2,000 survivors; glibc hands back at least half
    assert report.freed_bytes is not None and report.freed_bytes >= 100 << 20
    assert report.rss_after_bytes is not None and report.rss_before_bytes is not None
    assert report.rss_after_bytes < report.rss_before_bytes - (100 << 20)
    assert "Returned" in report.explanation
    assert "Returned" in str(report)
    assert len(keep) == 2000


def test_top_level_name_is_the_same_function() -> None:
    assert memscope.release_memory is release_memory


def test_collected_counts_real_cycles() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    for _ in range(500):
        Node()
    report = MemoryReleaser().release(trim=False)
    assert report.collected >= 500  # each Node is a cycle only the collector frees
    assert report.method == "none" and not report.trimmed
    assert "not asked to trim" in report.explanation


def test_min_interval_throttles_on_the_injected_clock() -> None:
    clock = FakeClock()
    releaser = MemoryReleaser(clock=clock)
    first = releaser.release(min_interval=10)
    assert_consistent(first)
    clock.now += 5
    throttled = releaser.release(min_interval=10)
    assert throttled.skipped and throttled.skip_reason == "throttled"
    assert throttled.rss_before_bytes is None and throttled.freed_bytes is None
    assert throttled.collected == 0 and throttled.expired == 0 and throttled.method == "none"
    assert "min_interval=10" in throttled.explanation
    # no interval: always runs, and counts as the latest pass
    assert not releaser.release().skipped
    clock.now += 9.999
    assert releaser.release(min_interval=10).skipped
    clock.now += 0.001
    assert not releaser.release(min_interval=10).skipped
    assert not releaser.release(min_interval=0).skipped


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, math.inf, "5", True, [1]])
def test_bad_min_interval_is_rejected_without_changing_state(bad: object) -> None:
    clock = FakeClock()
    releaser = MemoryReleaser(clock=clock)
    assert not releaser.release(min_interval=60).skipped
    error = TypeError if isinstance(bad, (str, bool, list)) else ValueError
    with pytest.raises(error, match=r"min_interval must be a finite number of seconds"):
        releaser.release(min_interval=bad)  # type: ignore[arg-type]
    clock.now += 1
    # the failed call did not count as a pass nor reset the throttle
    assert releaser.release(min_interval=60).skip_reason == "throttled"


def test_bad_flags_are_rejected() -> None:
    with pytest.raises(TypeError, match="collect must be True or False"):
        MemoryReleaser().release(collect=1)  # type: ignore[arg-type]


def test_hot_path_runs_once_per_interval_across_threads() -> None:
    releaser = MemoryReleaser()  # real monotonic clock
    n_threads, calls = 8, 25
    barrier = threading.Barrier(n_threads)
    reports: list[ReleaseReport] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(calls):
            report = releaser.release(min_interval=3600)
            with lock:
                reports.append(report)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(reports) == n_threads * calls
    ran = [r for r in reports if not r.skipped]
    assert len(ran) == 1
    assert_consistent(ran[0])
    assert {r.skip_reason for r in reports if r.skipped} <= {"busy", "throttled"}


def test_a_caller_during_a_running_pass_is_skipped_not_blocked() -> None:
    entered = threading.Event()
    proceed = threading.Event()

    def slow_trim() -> tuple[str, bool]:
        entered.set()
        proceed.wait(30)
        return "none", False

    releaser = MemoryReleaser(trim=slow_trim)  # type: ignore[arg-type]
    result: list[ReleaseReport] = []
    worker = threading.Thread(target=lambda: result.append(releaser.release()))
    worker.start()
    try:
        assert entered.wait(30)
        started = time.monotonic()
        busy = releaser.release()
        waited = time.monotonic() - started
        assert busy.skipped and busy.skip_reason == "busy"
        assert "another release_memory() pass was running" in busy.explanation
        assert waited < 5  # returned while the other pass was still parked
    finally:
        proceed.set()
        worker.join(30)
    assert len(result) == 1 and not result[0].skipped
    assert not releaser.release().skipped  # the lock was released


class ExpiringCache:
    """A tracked cache with expire(), like memscope.guard.BoundedCache."""

    def __init__(self, stale: int, *, result: str = "count") -> None:
        self.items = {i: bytes(64) for i in range(stale)}
        self.result = result

    def __len__(self) -> int:
        return len(self.items)

    def expire(self) -> object:
        expired = list(self.items.items())
        self.items.clear()
        if self.result == "count":
            return len(expired)
        if self.result == "pairs":
            return expired
        return None


class BrokenCache:
    def __len__(self) -> int:
        return 3

    def expire(self) -> int:
        raise RuntimeError("backend gone")


@pytest.fixture
def caches() -> Iterator[list[object]]:
    objs: list[object] = [
        ExpiringCache(7),
        ExpiringCache(5, result="pairs"),
        ExpiringCache(4, result="none"),
        BrokenCache(),
    ]
    for i, obj in enumerate(objs):
        memscope.track(obj, name=f"test_release_cache_{i}")
    yield objs
    for obj in objs:
        memscope.untrack(obj)


def test_expires_tracked_caches_and_contains_failures(caches: list[object]) -> None:
    report = MemoryReleaser().release(trim=False)
    # an int or the expired items count; an expire() that returns None reports nothing
    assert report.expired == 7 + 5
    assert any("backend gone" in e and "test_release_cache_3" in e for e in report.errors)
    assert all(len(c) == 0 for c in caches[:3])  # type: ignore[arg-type]
    assert MemoryReleaser().release(trim=False, expire=True).expired == 0
    assert MemoryReleaser().release(trim=False, expire=False).errors == ()


def test_cachetools_ttlcache_expire_is_counted() -> None:
    cachetools = pytest.importorskip("cachetools")
    clock = FakeClock(0.0)
    cache = cachetools.TTLCache(maxsize=100, ttl=10, timer=clock)
    for i in range(30):
        cache[i] = str(i)
    memscope.track(cache, name="test_release_ttl")
    try:
        clock.now = 60.0  # every entry is now stale but still held
        raw_len = cachetools.Cache.__len__  # TTLCache's own len() would expire them
        assert raw_len(cache) == 30
        report = MemoryReleaser().release(trim=False)
        assert report.expired == 30
        assert raw_len(cache) == 0
    finally:
        memscope.untrack(cache)


def test_unreadable_rss_and_a_failing_trim_are_contained() -> None:
    def no_rss() -> int | None:
        raise OSError("no /proc")

    def bad_trim() -> tuple[str, bool]:
        raise OSError("symbol vanished")

    report = MemoryReleaser(rss=no_rss, trim=bad_trim).release()  # type: ignore[arg-type]
    assert not report.skipped
    assert report.rss_before_bytes is None and report.freed_bytes is None
    assert any("no /proc" in e for e in report.errors)
    assert any("symbol vanished" in e for e in report.errors)
    assert "could not be read" in report.explanation


def test_platform_without_a_trim_call_says_so() -> None:
    report = MemoryReleaser(trim=lambda: ("none", False)).release()
    assert report.method == "none" and not report.trimmed
    assert "no call that hands freed heap back" in report.explanation


_PINNED = """
import json
from memscope.guard.release import MemoryReleaser
small = [str(i) * 2 for i in range(1_000_000)]  # pymalloc blocks
keep = small[::100]
del small
report = MemoryReleaser().release()
print(json.dumps(report.to_dict()))
"""


@needs_pymalloc
def test_pinned_pymalloc_arenas_are_explained_not_claimed() -> None:
    # in a fresh interpreter: the utilisation is the whole process's, and a long-lived test
    # process (pandas loaded, big heaps built and freed) has arenas of its own
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PINNED], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(out.stdout)
    assert report["pymalloc_arena_bytes"] is not None
    assert report["pymalloc_utilisation"] is not None
    assert report["pymalloc_utilisation"] < 0.5
    assert "pinned" in report["explanation"]
    assert "PYTHONMALLOC=malloc" in report["explanation"]
    assert "max-requests" in report["explanation"]


@needs_trim
@pytest.mark.asyncio
async def test_async_release_keeps_the_loop_serving() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.01)
        keep = fragmented_malloc_heap()
        # a plain call blocks the loop: the ticker cannot run during it
        before_sync = ticks
        release_memory()
        assert ticks == before_sync
        keep2 = fragmented_malloc_heap()
        before_async = ticks
        report = await release_memory_async()
        assert ticks > before_async  # the loop kept serving while the pass ran
        assert_consistent(report)
        assert report.freed_bytes is not None and report.freed_bytes >= 100 << 20
        assert len(keep) == len(keep2) == 2000
    finally:
        stop.set()
        await task


@pytest.mark.asyncio
async def test_async_rejects_bad_arguments_in_the_caller() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        await release_memory_async(min_interval=-1)
    with pytest.raises(TypeError, match="unexpected argument"):
        await release_memory_async(interval=5)


def test_current_rss_is_plausible() -> None:
    rss = rss_bytes()
    assert rss is not None and rss > 1 << 20


def test_expires_a_named_bounded_cache() -> None:
    from memscope.guard import BoundedCache

    clock = FakeClock(0.0)
    cache: BoundedCache[int, bytes] = BoundedCache(
        maxsize=100, ttl=1.0, timer=clock, name="test_release_bounded"
    )
    for i in range(20):
        cache[i] = bytes(100)
    clock.now = 5.0
    report = MemoryReleaser().release(trim=False)
    assert report.expired >= 20
    assert len(cache) == 0


def test_a_tracked_object_whose_getattr_raises_is_contained() -> None:
    class Proxy:
        def __len__(self) -> int:
            return 1

        def __getattr__(self, name: str) -> object:
            raise KeyError(name)  # a mapping-like proxy that answers every attribute so

    proxy = memscope.track(Proxy(), name="release-proxy")
    try:
        report = release_memory()
        assert not report.skipped
        assert any("release-proxy.expire()" in e and "KeyError" in e for e in report.errors)
    finally:
        memscope.untrack(proxy)


CHURN_UNDER_C_MALLOC = r"""
import json, os, threading
def rss():
    with open("/proc/self/statm", "rb") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
survivors = []
def work(seed):
    for r in range(10):
        batch = [{"id": i, "name": f"u-{seed}-{r}-{i}", "blob": "x" * (40 + i % 200)}
                 for i in range(50_000)]
        survivors.extend(batch[::200])
        del batch
threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
from memscope.guard import release_memory
before = rss()
report = release_memory()
print(json.dumps({"before": before, "after": rss(), "freed": report.to_dict()["freed_bytes"]}))
"""


@needs_trim
def test_c_malloc_keeps_freed_memory_until_trimmed() -> None:
    # What the PYTHONMALLOC=malloc advice warns about, on a real multi-threaded churn:
    # freed small objects stay resident in malloc's arenas until release_memory() trims.
    out = subprocess.run(
        [sys.executable, "-c", CHURN_UNDER_C_MALLOC],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONMALLOC="malloc"),
        timeout=120,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["before"] - row["after"] >= 20 << 20, row
    assert row["freed"] >= 20 << 20, row
