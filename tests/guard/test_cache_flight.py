"""Single flight (get_or_set, aget_or_set) and the @bounded_cache decorator, sync and async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from memscope.guard.cache import BoundedCache
from memscope.guard.cache_decorator import CacheInfo, bounded_cache

THREADS = 8


def _start_all(target: Any, n: int = THREADS) -> list[threading.Thread]:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def _wait_for_waiters(flight_cache: BoundedCache[Any, Any], key: Any, timeout: float = 5.0) -> None:
    """Until the key's flight exists (the leader is inside the factory)."""
    deadline = time.monotonic() + timeout
    while key not in flight_cache._flights:
        assert time.monotonic() < deadline, "no thread became the leader"
        time.sleep(0.001)


# -- get_or_set ---------------------------------------------------------------------------------


def _until(condition: Any, what: str, timeout: float = 5.0) -> None:
    """Poll ``condition()`` until true; fail (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)


def test_get_or_set_runs_factory_once_per_key_while_every_thread_waits() -> None:
    cache: BoundedCache[str, object] = BoundedCache(10)
    keys = ("model-a", "model-b")
    calls: Counter[str] = Counter()
    overlapped: dict[str, bool] = {}
    results: dict[str, list[object]] = {key: [] for key in keys}

    def factory(key: str) -> Callable[[], object]:
        def load() -> object:
            calls[key] += 1
            # every thread of every key has missed while this load runs: each miss is
            # counted under the lock, where the thread finds this flight and then waits
            # on it. So the threads really overlap, they are not served one after another.
            try:
                _until(lambda: cache.stats().misses == THREADS * len(keys), "every thread")
                overlapped[key] = True
            except AssertionError:
                overlapped[key] = False
            return object()

        return load

    def worker(key: str) -> None:
        results[key].append(cache.get_or_set(key, factory(key)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in keys for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not [t for t in threads if t.is_alive()], "a thread hung"
    assert overlapped == {key: True for key in keys}, "the threads did not overlap"
    assert calls == {key: 1 for key in keys}  # exactly one load per key
    for key in keys:
        assert len(results[key]) == THREADS and all(r is results[key][0] for r in results[key])
        assert cache[key] is results[key][0]
    assert cache._flights == {}
    assert cache.stats().misses == THREADS * len(keys)  # one miss per caller, none counted twice


def test_factory_exception_reaches_every_waiter_and_is_not_cached() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10)
    release = threading.Event()
    calls = 0
    errors: list[BaseException] = []

    def factory() -> int:
        nonlocal calls
        calls += 1
        release.wait(5)
        raise OSError("model file missing")

    def worker() -> None:
        try:
            cache.get_or_set("model", factory)
        except OSError as exc:
            errors.append(exc)

    threads = _start_all(worker)
    _wait_for_waiters(cache, "model")
    time.sleep(0.05)
    release.set()
    for t in threads:
        t.join()
    assert calls == 1
    assert len(errors) == THREADS and all(e is errors[0] for e in errors)
    assert "model" not in cache and cache._flights == {}
    # not cached: the next call runs the factory again
    assert cache.get_or_set("model", lambda: 7) == 7


def test_waiting_does_not_hold_the_cache_lock() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10)
    inside = threading.Event()
    release = threading.Event()

    def slow() -> int:
        inside.set()
        release.wait(5)
        return 1

    leader = threading.Thread(target=lambda: cache.get_or_set("slow", slow))
    waiter = threading.Thread(target=lambda: cache.get_or_set("slow", slow))
    leader.start()
    inside.wait(5)
    waiter.start()
    time.sleep(0.02)
    # other keys stay usable meanwhile, from this thread, with no deadlock
    cache["other"] = 2
    assert cache["other"] == 2
    assert cache.get_or_set("third", lambda: 3) == 3
    assert not cache._lock.locked()
    release.set()
    leader.join()
    waiter.join()
    assert cache["slow"] == 1


def test_recursive_get_or_set_of_same_key_raises() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10)

    def factory() -> int:
        return cache.get_or_set("k", factory)

    with pytest.raises(RuntimeError, match="own factory"):
        cache.get_or_set("k", factory)
    assert cache._flights == {} and "k" not in cache


def test_too_large_factory_result_raises_and_is_not_stored() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(10, max_bytes=500, getsizeof=lambda k, v: len(v))
    with pytest.raises(ValueError, match="max_bytes=500"):
        cache.get_or_set("big", lambda: b"x" * 1000)
    assert "big" not in cache and cache._flights == {}


# -- the sync decorator --------------------------------------------------------------------------


def test_decorator_caches_and_reports_like_functools() -> None:
    calls: list[tuple[Any, ...]] = []

    @bounded_cache(maxsize=2)
    def square(x: int, *, offset: int = 0) -> int:
        calls.append((x, offset))
        return x * x + offset

    assert square(3) == 9
    assert square(3) == 9
    assert square(3, offset=1) == 10
    assert square(4) == 16  # evicts square(3)
    assert square(3) == 9
    assert calls == [(3, 0), (3, 1), (4, 0), (3, 0)]
    info = square.cache_info()  # type: ignore[attr-defined]
    assert info == CacheInfo(hits=1, misses=4, maxsize=2, currsize=2)
    assert isinstance(square.cache, BoundedCache)  # type: ignore[attr-defined]
    assert square.__name__ == "square" and square.__wrapped__ is not None  # type: ignore[attr-defined]
    square.cache_clear()  # type: ignore[attr-defined]
    assert square.cache_info() == CacheInfo(0, 0, 2, 0)  # type: ignore[attr-defined]


def test_decorator_bare_and_typed() -> None:
    @bounded_cache
    def ident(x: Any) -> Any:
        return x

    pair = ident((1, 2))
    assert ident((1.0, 2)) is pair  # untyped: equal arguments share an entry
    assert ident.cache.maxsize == 128  # type: ignore[attr-defined]

    @bounded_cache(maxsize=8, typed=True)
    def ident_typed(x: Any) -> Any:
        return x

    assert type(ident_typed(1)) is int and type(ident_typed(1.0)) is float
    assert ident_typed.cache_info().currsize == 2  # type: ignore[attr-defined]


def test_decorator_keys_do_not_collide() -> None:
    @bounded_cache(maxsize=16)
    def echo(*args: Any, **kwargs: Any) -> Any:
        return (args, kwargs)

    assert echo(1) == ((1,), {})
    assert echo((1,)) == (((1,),), {})
    assert echo(1, 2) == ((1, 2), {})
    assert echo((1, 2)) == (((1, 2),), {})
    assert echo(a=1) == ((), {"a": 1})
    assert echo("a", 1) == (("a", 1), {})


def test_decorator_bad_arguments_fail_at_decoration() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        bounded_cache(maxsize=0)
    with pytest.raises(ValueError, match="ttl"):
        bounded_cache(ttl=-1)
    with pytest.raises(TypeError, match="typed"):
        bounded_cache(typed="yes")  # type: ignore[call-overload]


def test_decorator_unhashable_argument() -> None:
    @bounded_cache(maxsize=4)
    def total(xs: list[int]) -> int:
        return sum(xs)

    with pytest.raises(TypeError, match="unhashable"):
        total([1, 2])


def test_decorated_method_caches_per_instance_and_keeps_self() -> None:
    class Model:
        loads = 0

        @bounded_cache(maxsize=4)
        def predict(self, x: int) -> int:
            Model.loads += 1
            return x + id(self) % 7

    a, b = Model(), Model()
    assert a.predict(1) == a.predict(1)
    b.predict(1)
    assert Model.loads == 2
    cache = Model.predict.cache  # type: ignore[attr-defined]
    assert len(cache) == 2
    assert any(key[0] is a for key in cache)  # self is part of the key: kept until evicted


def test_decorator_single_flight_across_threads() -> None:
    calls = 0
    overlapped = False

    @bounded_cache(maxsize=4)
    def load(name: str) -> str:
        nonlocal calls, overlapped
        calls += 1
        # as above: every caller has missed (and so waits on this call) before it returns
        _until(lambda: load.cache.stats().misses == THREADS, "every thread")  # type: ignore[attr-defined]
        overlapped = True
        return name.upper()

    results: list[str] = []
    threads = _start_all(lambda: results.append(load("m")))
    for t in threads:
        t.join(10)
    assert overlapped and calls == 1 and results == ["M"] * THREADS


def test_decorator_name_defaults_to_qualname() -> None:
    @bounded_cache(maxsize=2)
    def named() -> int:
        return 1

    assert named.cache.name is not None and named.cache.name.endswith("named")  # type: ignore[attr-defined]

    @bounded_cache(maxsize=2, name="custom")
    def other() -> int:
        return 1

    assert other.cache.name == "custom"  # type: ignore[attr-defined]


# -- async ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_results_cached_not_coroutines() -> None:
    calls = 0

    @bounded_cache(maxsize=4)
    async def fetch(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return x * 2

    assert await fetch(2) == 4
    assert await fetch(2) == 4
    assert calls == 1
    assert fetch.cache_info() == CacheInfo(1, 1, 4, 1)  # type: ignore[attr-defined]
    cached = fetch.cache[2]  # type: ignore[attr-defined]
    assert cached == 4 and not asyncio.iscoroutine(cached)


@pytest.mark.asyncio
async def test_async_concurrent_awaits_share_one_call() -> None:
    calls = 0
    gate = asyncio.Event()

    @bounded_cache(maxsize=4)
    async def load(name: str) -> list[str]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return [name]

    tasks = [asyncio.create_task(load("m")) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert all(r is results[0] for r in results)
    assert load.cache._aflights == {}  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_async_exception_reaches_all_and_is_not_cached() -> None:
    calls = 0
    gate = asyncio.Event()

    @bounded_cache(maxsize=4)
    async def load(name: str) -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise LookupError(name)

    tasks = [asyncio.create_task(load("m")) for _ in range(5)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, LookupError) for r in results)
    assert "m" not in load.cache and load.cache._aflights == {}  # type: ignore[attr-defined]
    gate.set()
    with pytest.raises(LookupError):
        await load("m")
    assert calls == 2


@pytest.mark.asyncio
async def test_async_cancelling_one_awaiter_keeps_the_call_for_others() -> None:
    calls = 0
    gate = asyncio.Event()

    @bounded_cache(maxsize=4)
    async def load(name: str) -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return name * 2

    first = asyncio.create_task(load("ab"))
    second = asyncio.create_task(load("ab"))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    assert await second == "abab"
    assert calls == 1
    assert load.cache["ab"] == "abab"  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_async_cancelling_every_awaiter_cancels_the_call() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @bounded_cache(maxsize=4)
    async def load(name: str) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return name

    tasks = [asyncio.create_task(load("x")) for _ in range(3)]
    await started.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.wait_for(cancelled.wait(), 5)
    assert "x" not in load.cache and load.cache._aflights == {}  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_aget_or_set_direct() -> None:
    cache: BoundedCache[str, int] = BoundedCache(4, ttl=60.0)

    async def make() -> int:
        await asyncio.sleep(0)
        return 5

    assert await cache.aget_or_set("k", make) == 5
    assert await cache.aget_or_set("k", make) == 5
    assert cache.stats().hits == 1 and cache.stats().misses == 1


def test_interrupt_in_on_evict_leaves_no_flight_behind() -> None:
    from memscope.guard.cache import BoundedCache

    now = [0.0]

    def interrupting(key: object, value: object, reason: str) -> None:
        raise KeyboardInterrupt

    cache: BoundedCache[str, int] = BoundedCache(
        4, ttl=1.0, timer=lambda: now[0], on_evict=interrupting
    )
    cache["k"] = 1
    now[0] = 5.0  # expired: the next get_or_set evicts it and calls on_evict
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_set("k", lambda: 2)
    assert cache._flights == {}
    assert cache.get_or_set("k", lambda: 3) == 3  # not blocked forever


def test_items_copy_is_safe_against_lock_free_readers() -> None:
    import sys
    import threading

    from memscope.guard.cache import BoundedCache

    class Cyclic:  # cyclic garbage whose finalizer runs Python code during a gc pass
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            sum(i for i in range(50))  # some bytecodes: a chance for the GIL to switch

    cache: BoundedCache[int, int] = BoundedCache(5000)
    for i in range(5000):
        cache[i] = i
    deadline = time.monotonic() + 1.5

    def reader() -> None:
        i = 0
        while time.monotonic() < deadline:
            cache.get(i % 5000)
            i += 7

    def garbage() -> None:
        while time.monotonic() < deadline:
            for _ in range(200):
                Cyclic()
            time.sleep(0)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    threads = [threading.Thread(target=f) for f in (reader, reader, garbage)]
    errors: list[RuntimeError] = []
    copies = 0
    try:
        for t in threads:
            t.start()
        while time.monotonic() < deadline:
            try:
                assert len(list(cache.items())) == 5000
                assert len(list(cache.values())) == 5000
                copies += 1
            except RuntimeError as exc:  # "OrderedDict mutated during iteration"
                errors.append(exc)
    finally:
        sys.setswitchinterval(old)
        for t in threads:
            t.join()
    assert copies > 0
    assert errors == []


def test_decorator_accepts_callable_objects_and_refuses_to_cache_coroutines() -> None:
    import asyncio
    import functools

    from memscope.guard.cache_decorator import bounded_cache

    class Loader:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self, name: str) -> str:
            self.calls += 1
            return f"model:{name}"

    loader = Loader()
    cached = bounded_cache(maxsize=8)(loader)
    assert asyncio.run(cached("en")) == "model:en"
    assert asyncio.run(cached("en")) == "model:en"  # the result was cached, not a coroutine
    assert loader.calls == 1

    def add(a: int, b: int) -> int:
        return a + b

    part = bounded_cache(maxsize=8)(functools.partial(add, 1))
    assert part(2) == 3 and part.cache_info().hits == 0
    assert part(2) == 3 and part.cache_info().hits == 1

    async def fetch() -> int:
        return 1

    def wraps_async() -> object:  # a plain def returning a coroutine
        return fetch()

    sync = bounded_cache(maxsize=8)(wraps_async)
    with pytest.raises(TypeError, match="returned an awaitable"):
        sync()
    assert sync.cache_info().currsize == 0
