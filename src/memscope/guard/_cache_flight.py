"""Single flight for BoundedCache: one factory call per missing key, however many callers miss.

The cache keeps the lock-free hit paths; what happens after a miss lives here. Threads
missing the same key wait on one :class:`_Flight`; the coroutines of one event loop
share one task through an :class:`_AsyncFlight`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._cache_sizing import short_repr

if TYPE_CHECKING:
    import asyncio

    from .cache import BoundedCache, EvictReason

K = TypeVar("K")
V = TypeVar("V")

# "no value" for the cache and its flights alike (a cached value may be None)
_MISSING: Any = object()


class _Flight:
    """One factory call that other threads missing the same key wait for."""

    __slots__ = ("done", "error", "owner", "retry", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.owner = threading.get_ident()
        self.value: Any = None
        self.error: BaseException | None = None
        self.retry = False


class _AsyncFlight:
    """One awaited factory call shared by the coroutines of one event loop."""

    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.waiters = 0


def load(
    cache: BoundedCache[K, V],
    key: K,
    func: Callable[..., V],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> V:
    """The value for ``key`` after a lock-free miss: found under the lock, or loaded once."""
    count = True  # the first look counts the hit or miss; a retry after a wait does not
    while True:
        with cache._lock:
            value, expired = cache._read_locked(key, count=count)
            if value is not _MISSING:
                return cast(V, value)
            count = False
            flight = cache._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = cache._flights[key] = _Flight()
        if leader:
            # the eviction callback runs inside _lead's try, so whatever it raises
            # (KeyboardInterrupt included) cannot leave the flight record behind
            return _lead(cache, key, flight, func, args, kwargs, expired)
        if expired is not None:
            cache._notify(expired)
        if flight.owner == threading.get_ident():
            raise RuntimeError(
                f"get_or_set({short_repr(key)}) called again from inside its own factory; "
                "it would wait for itself forever"
            )
        flight.done.wait()
        if flight.retry:
            continue  # the leader was interrupted (not failed): try again
        if flight.error is not None:
            raise flight.error
        return cast(V, flight.value)


def _lead(
    cache: BoundedCache[K, V],
    key: K,
    flight: _Flight,
    func: Callable[..., V],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expired: list[tuple[K, V, EvictReason]] | None,
) -> V:
    try:
        if expired is not None:
            cache._notify(expired)
        value = func(*args, **kwargs)
        cache[key] = value
    except Exception as exc:
        flight.error = exc
        raise
    except BaseException:
        # KeyboardInterrupt and the like belong to this thread only; the others retry
        flight.retry = True
        raise
    else:
        flight.value = value
        return value
    finally:
        with cache._lock:
            if cache._flights.get(key) is flight:
                del cache._flights[key]
        flight.done.set()


async def aload(cache: BoundedCache[K, V], key: K, factory: Callable[[], Awaitable[V]]) -> V:
    """The value for ``key`` after a lock-free miss: found under the lock, or awaited once
    per event loop (cancelling the last awaiter cancels the call)."""
    import asyncio

    loop = asyncio.get_running_loop()
    fkey = (key, loop)
    with cache._lock:
        value, expired = cache._read_locked(key, count=True)
        if value is not _MISSING:
            return cast(V, value)
        flight = cache._aflights.get(fkey)
        if flight is None:
            flight = cache._aflights[fkey] = _AsyncFlight()
            flight.task = loop.create_task(_arun(cache, key, fkey, flight, factory))
    if expired is not None:
        cache._notify(expired)
    task = cast("asyncio.Task[V]", flight.task)
    flight.waiters += 1
    try:
        return await asyncio.shield(task)
    finally:
        flight.waiters -= 1
        if flight.waiters == 0 and not task.done():
            # every awaiter was cancelled: stop the call nobody waits for, cache nothing
            _forget_aflight(cache, fkey, flight)
            task.cancel()


async def _arun(
    cache: BoundedCache[K, V],
    key: K,
    fkey: tuple[K, asyncio.AbstractEventLoop],
    flight: _AsyncFlight,
    factory: Callable[[], Awaitable[V]],
) -> V:
    try:
        value = await factory()
        cache[key] = value
        return value
    finally:
        _forget_aflight(cache, fkey, flight)


def _forget_aflight(
    cache: BoundedCache[K, V], fkey: tuple[K, asyncio.AbstractEventLoop], flight: _AsyncFlight
) -> None:
    with cache._lock:
        if cache._aflights.get(fkey) is flight:
            del cache._aflights[fkey]
