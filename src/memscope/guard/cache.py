"""BoundedCache: a thread-safe LRU mapping bounded by entries, bytes and time; @bounded_cache."""

from __future__ import annotations

import functools
import itertools
import logging
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import (
    Awaitable,
    Callable,
    Hashable,
    ItemsView,
    Iterator,
    KeysView,
    MutableMapping,
    ValuesView,
)
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, cast, overload

from .._base.tracking import track

if TYPE_CHECKING:
    import asyncio

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

EvictReason = Literal["size", "bytes", "ttl"]

log = logging.getLogger("memscope")

#: Bytes counted per entry on top of ``getsizeof(key, value)`` when bytes are accounted:
#: what the cache's own bookkeeping (ordered-dict slot and link, size record) spends per
#: entry on 64-bit CPython, measured with tracemalloc over 100k entries.
ENTRY_OVERHEAD_BYTES = 192
#: Added to ENTRY_OVERHEAD_BYTES when ``ttl`` is set (expiry record and its float).
TTL_OVERHEAD_BYTES = 128

# Expired entries removed (at most) per write, so a write stays O(1) amortised.
_SWEEP_PER_WRITE = 4

_MISSING: Any = object()

# Reads of a present key skip the lock where the GIL makes single OrderedDict calls
# atomic; free-threaded builds (no GIL) take the lock on every read.
_LOCK_FREE_READS: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


def _count_value(counter: itertools.count[int]) -> int:
    """The next value an itertools.count would return, without advancing it."""
    return int(repr(counter)[6:-1])  # "count(N)"


_SCALARS = (int, float, str, bytes, bool, type(None), complex)


def default_getsizeof(key: object, value: object) -> int:
    """Shallow size of key and value, one level into builtin containers (see docs)."""
    return _estimate(key) + _estimate(value)


def _shallow(obj: object) -> int:
    size = sys.getsizeof(obj)
    if type(obj) in _SCALARS:
        return size
    # arrays, tensors and memoryviews report their buffer in ``nbytes``; getsizeof may not
    try:
        nbytes = getattr(obj, "nbytes", None)
    except Exception:
        return size
    return nbytes if type(nbytes) is int and nbytes > size else size


def _estimate(obj: object) -> int:
    size = _shallow(obj)
    if type(obj) in _SCALARS:
        return size
    if isinstance(obj, dict):
        return size + sum(_shallow(k) + _shallow(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return size + sum(_shallow(item) for item in obj)
    return size


def _short(obj: object, limit: int = 80) -> str:
    """A repr bounded to ``limit`` characters, for error messages."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_int(arg: str, value: object, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        accepted = "an int >= 1" + (" or None" if optional else "")
        raise ValueError(f"{arg} must be {accepted}, got {value!r}")
    return value


def _check_ttl(ttl: object) -> float | None:
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ValueError(f"ttl must be a finite number of seconds > 0 or None, got {ttl!r}")
    return float(ttl)


def _check_callable(arg: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{arg} must be callable{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class CacheStats:
    """Counters since construction (or the last cache_clear()) and current occupancy."""

    hits: int
    misses: int
    evictions_size: int
    evictions_bytes: int
    evictions_ttl: int
    entries: int
    bytes: int | None  # None when bytes are not accounted

    @property
    def evictions(self) -> int:
        """Evictions for every reason."""
        return self.evictions_size + self.evictions_bytes + self.evictions_ttl

    def to_dict(self) -> dict[str, int | None]:
        """JSON-safe form."""
        return asdict(self)


class CacheInfo(NamedTuple):
    """Like ``functools._CacheInfo``: what a @bounded_cache function's ``cache_info()`` returns."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


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


class BoundedCache(MutableMapping[K, V]):
    """An LRU mapping bounded by ``maxsize`` entries, optional ``ttl`` and ``max_bytes``.

    Thread-safe: every operation takes the cache's own (non-reentrant) lock once;
    ``getsizeof`` and ``on_evict`` run outside it, key hashing/equality inside it.
    """

    __slots__ = (
        "__weakref__",
        "_aflights",
        "_bytes",
        "_data",
        "_ev_bytes",
        "_ev_size",
        "_ev_ttl",
        "_expires",
        "_flights",
        "_getsizeof",
        "_hits",
        "_lock",
        "_max_bytes",
        "_maxsize",
        "_misses",
        "_name",
        "_on_evict",
        "_overhead",
        "_sizes",
        "_timer",
        "_ttl",
    )

    def __init__(
        self,
        maxsize: int = 128,
        ttl: float | None = None,
        max_bytes: int | None = None,
        *,
        getsizeof: Callable[[K, V], int] | None = None,
        timer: Callable[[], float] = time.monotonic,
        on_evict: Callable[[K, V, EvictReason], object] | None = None,
        name: str | None = None,
    ) -> None:
        self._maxsize = cast(int, _check_int("maxsize", maxsize, optional=False))
        self._ttl = _check_ttl(ttl)
        self._max_bytes = _check_int("max_bytes", max_bytes, optional=True)
        _check_callable("getsizeof", getsizeof, optional=True)
        _check_callable("timer", timer, optional=False)
        _check_callable("on_evict", on_evict, optional=True)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty str or None, got {name!r}")
        if getsizeof is None and self._max_bytes is not None:
            getsizeof = default_getsizeof
        # bytes are accounted when bounded by max_bytes or when a getsizeof is given
        self._getsizeof: Callable[[K, V], int] | None = getsizeof
        self._sizes: dict[K, int] | None = {} if getsizeof is not None else None
        self._bytes = 0
        self._overhead = ENTRY_OVERHEAD_BYTES + (TTL_OVERHEAD_BYTES if ttl is not None else 0)
        self._timer = timer
        self._on_evict = on_evict
        self._name = name
        self._lock = threading.Lock()
        # LRU order: least recently used first
        self._data: OrderedDict[K, V] = OrderedDict()
        # write order, which is expiry order because ttl is the same for every entry
        self._expires: OrderedDict[K, float] | None = OrderedDict() if ttl is not None else None
        # itertools.count: next() is atomic, so the lock-free read path can count hits
        self._hits = itertools.count()
        self._misses = itertools.count()
        self._ev_size = 0
        self._ev_bytes = 0
        self._ev_ttl = 0
        self._flights: dict[K, _Flight] = {}
        self._aflights: dict[tuple[K, asyncio.AbstractEventLoop], _AsyncFlight] = {}
        track(self, name=name or "BoundedCache", clear=True)

    # -- read-only configuration and occupancy ------------------------------------------

    @property
    def maxsize(self) -> int:
        """Most entries the cache holds."""
        return self._maxsize

    @property
    def ttl(self) -> float | None:
        """Seconds an entry lives after it was last written, or None."""
        return self._ttl

    @property
    def max_bytes(self) -> int | None:
        """Most bytes (getsizeof plus per-entry overhead) the entries may add up to, or None."""
        return self._max_bytes

    @property
    def name(self) -> str | None:
        """The name shown in snapshots."""
        return self._name

    @property
    def currsize(self) -> int:
        """Entries held now (expired ones are removed first)."""
        return len(self)

    @property
    def currbytes(self) -> int | None:
        """Bytes held now, per getsizeof plus overhead; None when bytes are not accounted."""
        if self._sizes is None:
            return None
        self.expire()
        return self._bytes

    # -- the mapping ----------------------------------------------------------------------

    def __getitem__(self, key: K) -> V:
        if _LOCK_FREE_READS:
            # a hit needs no lock: each OrderedDict call below is atomic under the GIL and
            # only reorders, while everything that adds or removes entries holds the lock
            expires = self._expires
            try:
                if expires is None or expires[key] > self._timer():
                    value = self._data[key]
                    self._data.move_to_end(key)
                    next(self._hits)
                    return value
            except KeyError:
                next(self._misses)
                raise KeyError(key) from None
        value = self._lookup(key)
        if value is _MISSING:
            raise KeyError(key)
        return cast(V, value)

    def get(self, key: K, default: Any = None) -> Any:
        """The value for ``key`` (marking it recently used), else ``default``."""
        if _LOCK_FREE_READS:
            expires = self._expires
            try:
                if expires is None or expires[key] > self._timer():
                    value = self._data[key]
                    self._data.move_to_end(key)
                    next(self._hits)
                    return value
            except KeyError:
                next(self._misses)
                return default
        value = self._lookup(key)
        return default if value is _MISSING else value

    def _lookup(self, key: K) -> Any:
        """The locked read: removes ``key`` if expired; the value or _MISSING."""
        expired = None
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is not _MISSING:
                expires = self._expires
                if expires is None or expires[key] > self._timer():
                    self._data.move_to_end(key)
                    next(self._hits)
                    return value
                expired = self._drop_locked(key)
            next(self._misses)
        self._notify(expired)
        return _MISSING

    def __setitem__(self, key: K, value: V) -> None:
        lock = self._lock
        evicted: list[tuple[K, V, EvictReason]] | None = None
        if self._sizes is None and self._expires is None:
            # plain LRU, inlined because it is the hot path of a busy cache; acquire and
            # release cost half of what a with-statement does
            lock.acquire()
            try:
                data = self._data
                n = len(data)
                data[key] = value
                if len(data) == n:  # replaced an existing entry: it is now the newest
                    data.move_to_end(key)
                elif n >= self._maxsize:
                    old_key, old_value = data.popitem(last=False)
                    self._ev_size += 1
                    if self._on_evict is not None:
                        evicted = [(old_key, old_value, "size")]
            finally:
                lock.release()
        else:
            size = self._measure(key, value) if self._sizes is not None else 0
            lock.acquire()
            try:
                evicted = self._store_locked(key, value, size)
            finally:
                lock.release()
        if evicted is not None:
            self._notify(evicted)

    def __delitem__(self, key: K) -> None:
        with self._lock:
            if key not in self._data:
                raise KeyError(key)
            expires = self._expires
            if expires is None or expires[key] > self._timer():
                del self._data[key]
                self._forget_locked(key)
                return
            expired = self._drop_locked(key)  # already dead: same as absent
        self._notify(expired)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        expired = None
        with self._lock:
            if key not in self._data:
                return False
            expires = self._expires
            if expires is None or expires[key] > self._timer():  # type: ignore[index]
                return True
            expired = self._drop_locked(cast(K, key))
        self._notify(expired)
        return False

    def __len__(self) -> int:
        if self._expires is not None:
            self.expire()
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        # iterate over a copy: the cache may change (other threads, LRU moves) meanwhile
        return iter(self._copy(keys=True))

    def keys(self) -> KeysView[K]:
        """A view of the keys, least recently used first; iterating it copies them."""
        return KeysView(self)

    def items(self) -> ItemsView[K, V]:
        """A view of (key, value), least recently used first; reading it changes no LRU order."""
        return _ItemsView(self)

    def values(self) -> ValuesView[V]:
        """A view of the values, least recently used first; reading it changes no LRU order."""
        return _ValuesView(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, maxsize={self._maxsize}, "
            f"ttl={self._ttl!r}, max_bytes={self._max_bytes!r}, currsize={len(self._data)})"
        )

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``; KeyError without one)."""
        expired = None
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is not _MISSING:
                expires = self._expires
                if expires is None or expires[key] > self._timer():
                    del self._data[key]
                    self._forget_locked(key)
                    return value
                expired = self._drop_locked(key)
        self._notify(expired)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, V]:
        """Remove and return the least recently used (key, value); KeyError when empty."""
        self.expire()
        with self._lock:
            try:
                key, value = self._data.popitem(last=False)
            except KeyError:
                raise KeyError(f"{type(self).__name__} is empty") from None
            self._forget_locked(key)
        return key, value

    def setdefault(self, key: K, default: Any = None) -> Any:
        """The value for ``key`` if present, else store ``default`` and return it."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value
        size = self._measure(key, default) if self._sizes is not None else 0
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is not _MISSING:  # stored by another thread meanwhile
                return value
            evicted = self._store_locked(key, default, size)
        self._notify(evicted)
        return default

    def clear(self) -> None:
        """Remove every entry (not an eviction: on_evict is not called; counters are kept)."""
        with self._lock:
            old = self._data
            self._data = OrderedDict()
            if self._expires is not None:
                self._expires = OrderedDict()
            if self._sizes is not None:
                self._sizes = {}
            self._bytes = 0
        # the old entries are freed here, outside the lock
        del old

    def expire(self) -> int:
        """Remove every expired entry now; returns how many were removed."""
        if self._expires is None:
            return 0
        with self._lock:
            evicted = self._sweep_locked(None)
        if evicted:
            self._notify(evicted)
        return len(evicted)

    # -- single flight ------------------------------------------------------------------------

    def get_or_set(self, key: K, factory: Callable[[], V]) -> V:
        """The value for ``key``; on a miss store ``factory()``, run once however many threads miss.

        Threads missing the same key meanwhile wait (without holding the cache lock) and
        get the same value, or the same exception; a failure is not cached.
        """
        return self._get_or_call(key, factory, (), {})

    def _get_or_call(
        self, key: K, func: Callable[..., V], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> V:
        if _LOCK_FREE_READS:
            expires = self._expires
            try:
                if expires is None or expires[key] > self._timer():
                    value = self._data[key]
                    self._data.move_to_end(key)
                    next(self._hits)
                    return value
            except KeyError:
                pass  # a miss: counted below, under the lock
        count = True
        while True:
            expired = None
            with self._lock:
                value = self._data.get(key, _MISSING)
                if value is not _MISSING:
                    expires = self._expires
                    if expires is None or expires[key] > self._timer():
                        self._data.move_to_end(key)
                        if count:
                            next(self._hits)
                        return cast(V, value)
                    expired = self._drop_locked(key)
                if count:
                    next(self._misses)
                    count = False
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight()
            if leader:
                # the eviction callback runs inside _lead's try, so whatever it raises
                # (KeyboardInterrupt included) cannot leave the flight record behind
                return self._lead(key, flight, func, args, kwargs, expired)
            if expired is not None:
                self._notify(expired)
            if flight.owner == threading.get_ident():
                raise RuntimeError(
                    f"get_or_set({_short(key)}) called again from inside its own factory; "
                    "it would wait for itself forever"
                )
            flight.done.wait()
            if flight.retry:
                continue  # the leader was interrupted (not failed): try again
            if flight.error is not None:
                raise flight.error
            return cast(V, flight.value)

    def _lead(
        self,
        key: K,
        flight: _Flight,
        func: Callable[..., V],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        expired: list[tuple[K, V, EvictReason]] | None = None,
    ) -> V:
        try:
            if expired is not None:
                self._notify(expired)
            value = func(*args, **kwargs)
            self[key] = value
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
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()

    async def aget_or_set(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        """Async get_or_set: on a miss await ``factory()`` once per event loop, store the result.

        Concurrent awaiters of the key share one call and its value or exception; a
        failure is not cached. Cancelling one awaiter leaves the call running for the
        others; when the last awaiter is cancelled the call is cancelled too.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        fkey = (key, loop)
        expired = None
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is not _MISSING:
                expires = self._expires
                if expires is None or expires[key] > self._timer():
                    self._data.move_to_end(key)
                    next(self._hits)
                    return cast(V, value)
                expired = self._drop_locked(key)
            next(self._misses)
            flight = self._aflights.get(fkey)
            if flight is None:
                flight = self._aflights[fkey] = _AsyncFlight()
                flight.task = loop.create_task(self._arun(key, fkey, flight, factory))
        if expired is not None:
            self._notify(expired)
        task = cast("asyncio.Task[V]", flight.task)
        flight.waiters += 1
        try:
            return await asyncio.shield(task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not task.done():
                # every awaiter was cancelled: stop the call nobody waits for, cache nothing
                self._forget_aflight(fkey, flight)
                task.cancel()

    async def _arun(
        self,
        key: K,
        fkey: tuple[K, asyncio.AbstractEventLoop],
        flight: _AsyncFlight,
        factory: Callable[[], Awaitable[V]],
    ) -> V:
        try:
            value = await factory()
            self[key] = value
            return value
        finally:
            self._forget_aflight(fkey, flight)

    def _forget_aflight(
        self, fkey: tuple[K, asyncio.AbstractEventLoop], flight: _AsyncFlight
    ) -> None:
        with self._lock:
            if self._aflights.get(fkey) is flight:
                del self._aflights[fkey]

    # -- statistics ---------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Hits, misses, evictions by reason, and the entries and bytes held now."""
        self.expire()
        with self._lock:
            return CacheStats(
                hits=_count_value(self._hits),
                misses=_count_value(self._misses),
                evictions_size=self._ev_size,
                evictions_bytes=self._ev_bytes,
                evictions_ttl=self._ev_ttl,
                entries=len(self._data),
                bytes=self._bytes if self._sizes is not None else None,
            )

    def memscope_stats(self) -> dict[str, int]:
        """What the ``tracked`` snapshot section shows for this cache."""
        s = self.stats()
        out = {
            "entries": s.entries,
            "maxsize": self._maxsize,
            "hits": s.hits,
            "misses": s.misses,
            "evictions_size": s.evictions_size,
            "evictions_bytes": s.evictions_bytes,
            "evictions_ttl": s.evictions_ttl,
        }
        if s.bytes is not None:
            out["size_bytes"] = s.bytes
        else:
            out["size_bytes"] = self._estimate_bytes()
            out["size_estimated"] = True
        return out

    def _estimate_bytes(self, sample: int = 64) -> int:
        """The dict plus its entries, from a sample: never a copy of the whole cache."""
        with self._lock:
            n = len(self._data)
            keys = list(itertools.islice(self._data, sample))
            values = [self._data.get(k) for k in keys]
            container = sys.getsizeof(self._data)
        if not keys:
            return container
        part = sum(map(sys.getsizeof, keys)) + sum(map(sys.getsizeof, values))
        return container + part * n // len(keys)

    def _reset_stats(self) -> None:
        with self._lock:
            self._hits = itertools.count()
            self._misses = itertools.count()
            self._ev_size = self._ev_bytes = self._ev_ttl = 0

    # -- internals (names ending in _locked expect the lock held) ------------------------------

    def _measure(self, key: K, value: V) -> int:
        getsizeof = cast(Callable[[K, V], int], self._getsizeof)
        size = getsizeof(key, value)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TypeError(
                f"getsizeof must return an int >= 0, returned {size!r} for {_short(key)}"
            )
        total = size + self._overhead
        if self._max_bytes is not None and total > self._max_bytes:
            raise ValueError(
                f"item {_short(key)} is {total} bytes ({size} + {self._overhead} per-entry "
                f"overhead), larger than max_bytes={self._max_bytes}; not stored"
            )
        return total

    def _store_locked(self, key: K, value: V, size: int) -> list[tuple[K, V, EvictReason]] | None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        expires = self._expires
        sizes = self._sizes
        evicted: list[tuple[K, V, EvictReason]] | None = None
        if expires is not None:
            now = self._timer()
            expires[key] = now + cast(float, self._ttl)
            expires.move_to_end(key)
            evicted = self._sweep_locked(_SWEEP_PER_WRITE, now)
        if sizes is not None:
            self._bytes += size - sizes.get(key, 0)
            sizes[key] = size
        if len(data) > self._maxsize:
            old_key, old_value = data.popitem(last=False)
            self._forget_locked(old_key)
            self._ev_size += 1
            if self._on_evict is not None:
                evicted = evicted or []
                evicted.append((old_key, old_value, "size"))
        max_bytes = self._max_bytes
        if max_bytes is not None:
            # never reaches the new entry: alone it fits (checked in _measure)
            while self._bytes > max_bytes:
                old_key, old_value = data.popitem(last=False)
                self._forget_locked(old_key)
                self._ev_bytes += 1
                if self._on_evict is not None:
                    evicted = evicted or []
                    evicted.append((old_key, old_value, "bytes"))
        return evicted

    def _forget_locked(self, key: K) -> float | None:
        """Drop ``key``'s expiry and size records (its value is already gone); its expiry."""
        expires_at = None
        if self._expires is not None:
            expires_at = self._expires.pop(key)
        if self._sizes is not None:
            self._bytes -= self._sizes.pop(key)
        return expires_at

    def _drop_locked(self, key: K) -> list[tuple[K, V, EvictReason]]:
        """Remove an entry found expired."""
        value = self._data.pop(key)
        self._forget_locked(key)
        self._ev_ttl += 1
        return [(key, value, "ttl")]

    def _sweep_locked(
        self, limit: int | None, now: float | None = None
    ) -> list[tuple[K, V, EvictReason]]:
        expires = cast("OrderedDict[K, float]", self._expires)
        if now is None:
            now = self._timer()
        evicted: list[tuple[K, V, EvictReason]] = []
        n = 0
        for at in expires.values():
            if at > now or (limit is not None and n >= limit):
                break
            n += 1
        if n:
            data = self._data
            sizes = self._sizes
            for _ in range(n):
                key, _at = expires.popitem(last=False)
                value = data.pop(key)
                if sizes is not None:
                    self._bytes -= sizes.pop(key)
                evicted.append((key, value, "ttl"))
            self._ev_ttl += n
        return evicted

    def _notify(self, evicted: list[tuple[K, V, EvictReason]] | None) -> None:
        on_evict = self._on_evict
        if on_evict is None or not evicted:
            return
        for key, value, reason in evicted:
            try:
                on_evict(key, value, reason)
            except Exception:  # a broken callback must not break the cache or its caller
                log.exception(
                    "memscope: on_evict of cache %r failed for key %s", self._name, _short(key)
                )

    def _copy(self, *, keys: bool) -> list[Any]:
        self.expire()
        with self._lock:
            # no per-item allocation while iterating: an allocation can start a gc pass,
            # a finalizer can then switch threads, and a lock-free reader's move_to_end
            # would change the order mid-iteration
            ks = list(self._data)
            if keys:
                return ks
            vs = list(self._data.values())
        return list(zip(ks, vs))


class _ItemsView(ItemsView[K, V]):
    _mapping: BoundedCache[K, V]

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return iter(self._mapping._copy(keys=False))

    def __contains__(self, item: object) -> bool:
        key, value = cast("tuple[K, V]", item)
        found = dict(self._mapping._copy(keys=False)).get(key, _MISSING)
        return found is not _MISSING and (found is value or found == value)


class _ValuesView(ValuesView[V]):
    _mapping: BoundedCache[Any, V]

    def __iter__(self) -> Iterator[V]:
        return iter([v for _k, v in self._mapping._copy(keys=False)])


# -- the decorator ---------------------------------------------------------------------------

_KWARGS_MARK = object()
_FAST_TYPES = frozenset({int, str})


def _make_key(args: tuple[Any, ...], kwargs: dict[str, Any], typed: bool) -> Hashable:
    if not kwargs and len(args) == 1 and type(args[0]) in _FAST_TYPES and not typed:
        return cast(Hashable, args[0])
    key: tuple[Any, ...] = args
    if kwargs:
        key += (_KWARGS_MARK, *kwargs.items())
    if typed:
        key += tuple(type(a) for a in args)
        if kwargs:
            key += tuple(type(v) for v in kwargs.values())
    return key


@overload
def bounded_cache(maxsize: F, /) -> F: ...


@overload
def bounded_cache(
    maxsize: int = 128,
    ttl: float | None = None,
    max_bytes: int | None = None,
    *,
    typed: bool = False,
    getsizeof: Callable[[Any, Any], int] | None = None,
    timer: Callable[[], float] = time.monotonic,
    on_evict: Callable[[Any, Any, EvictReason], object] | None = None,
    name: str | None = None,
) -> Callable[[F], F]: ...


def bounded_cache(
    maxsize: int | Callable[..., Any] = 128,
    ttl: float | None = None,
    max_bytes: int | None = None,
    *,
    typed: bool = False,
    getsizeof: Callable[[Any, Any], int] | None = None,
    timer: Callable[[], float] = time.monotonic,
    on_evict: Callable[[Any, Any, EvictReason], object] | None = None,
    name: str | None = None,
) -> Any:
    """Memoise a sync or async function in a BoundedCache (``fn.cache``), single flight per key."""
    if callable(maxsize) and not isinstance(maxsize, int):
        # used bare: @bounded_cache
        return bounded_cache()(maxsize)
    if not isinstance(typed, bool):
        raise TypeError(f"typed must be a bool, got {typed!r}")
    # validate now, at decoration time, rather than at the first call
    _check_int("maxsize", maxsize, optional=False)
    _check_ttl(ttl)
    _check_int("max_bytes", max_bytes, optional=True)
    _check_callable("getsizeof", getsizeof, optional=True)
    _check_callable("timer", timer, optional=False)
    _check_callable("on_evict", on_evict, optional=True)

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError(f"bounded_cache decorates a callable, got {func!r}")
        cache: BoundedCache[Any, Any] = BoundedCache(
            maxsize,
            ttl,
            max_bytes,
            getsizeof=getsizeof,
            timer=timer,
            on_evict=on_evict,
            name=name or _callable_name(func),
        )
        return _wrap(func, cache, typed)

    return decorate


def _callable_name(func: Any) -> str:
    """module.qualname for functions; something readable for partials and callable objects."""
    target = getattr(func, "func", func)  # functools.partial
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{getattr(target, '__module__', None) or type(target).__module__}.{qual}"


def _is_async(func: Any) -> bool:
    import inspect

    # an instance whose class has an async __call__ is an async callable too
    dunder_call = getattr(type(func), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(dunder_call)


def _wrap(func: F, cache: BoundedCache[Any, Any], typed: bool) -> F:
    import inspect

    wrapper: Any
    if _is_async(func):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = _make_key(args, kwargs, typed)
            return await cache.aget_or_set(key, functools.partial(func, *args, **kwargs))

    else:
        get_or_call = cache._get_or_call

        def call(*args: Any, **kwargs: Any) -> Any:
            value = func(*args, **kwargs)
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if callable(close):
                    close()  # never awaited: close it so it does not warn
                raise TypeError(
                    f"{_callable_name(func)} returned an awaitable; @bounded_cache caches "
                    "results, never coroutines: make it an async def so results are awaited"
                )
            return value

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return get_or_call(_make_key(args, kwargs, typed), call, args, kwargs)

    def cache_info() -> CacheInfo:
        s = cache.stats()
        return CacheInfo(s.hits, s.misses, cache.maxsize, s.entries)

    def cache_clear() -> None:
        cache.clear()
        cache._reset_stats()

    functools.update_wrapper(wrapper, func)
    wrapper.cache = cache
    wrapper.cache_info = cache_info
    wrapper.cache_clear = cache_clear
    wrapper.cache_parameters = lambda: {
        "maxsize": cache.maxsize,
        "ttl": cache.ttl,
        "max_bytes": cache.max_bytes,
        "typed": typed,
    }
    return cast(F, wrapper)


__all__ = [
    "ENTRY_OVERHEAD_BYTES",
    "TTL_OVERHEAD_BYTES",
    "BoundedCache",
    "CacheInfo",
    "CacheStats",
    "bounded_cache",
]
