"""BoundedCache: a thread-safe LRU mapping bounded by entries, bytes and time.

Single flight lives in ``_cache_flight``, entry sizing in ``_cache_sizing`` and the
``@bounded_cache`` decorator in ``cache_decorator``.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import (
    Awaitable,
    Callable,
    ItemsView,
    Iterator,
    KeysView,
    MutableMapping,
    ValuesView,
)
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from .._base.validate import check_callable, check_int, check_number, check_str
from . import _cache_flight
from ._cache_flight import _MISSING, _AsyncFlight, _Flight
from ._cache_sizing import ENTRY_OVERHEAD_BYTES, TTL_OVERHEAD_BYTES, default_getsizeof, short_repr
from ._fork import reset_after_fork
from ._naming import register

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "ENTRY_OVERHEAD_BYTES",
    "TTL_OVERHEAD_BYTES",
    "BoundedCache",
    "CacheStats",
    "EvictReason",
    "default_getsizeof",
]

K = TypeVar("K")
_T = TypeVar("_T")
V = TypeVar("V")

EvictReason = Literal["size", "bytes", "ttl"]

log = logging.getLogger("memscope")

# Expired entries removed (at most) per write, so a write stays O(1) amortised.
_SWEEP_PER_WRITE = 4

# Reads of a present key skip the lock where the GIL makes single OrderedDict calls
# atomic; free-threaded builds (no GIL) take the lock on every read.
_LOCK_FREE_READS: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


def _count_value(counter: itertools.count[int]) -> int:
    """The next value an itertools.count would return, without advancing it."""
    return int(repr(counter)[6:-1])  # "count(N)"


def _check_config(
    maxsize: object,
    ttl: object,
    max_bytes: object,
    getsizeof: object,
    timer: object,
    on_evict: object,
) -> tuple[int, float | None, int | None]:
    """Validate a cache's configuration (BoundedCache and @bounded_cache share the rules)."""
    size: int = check_int("maxsize", maxsize, low=1)
    seconds: float | None = check_number(
        "ttl", ttl, low=0.0, low_open=True, optional=True, unit="seconds"
    )
    nbytes: int | None = check_int("max_bytes", max_bytes, low=1, optional=True, unit="bytes")
    check_callable("getsizeof", getsizeof, optional=True)
    check_callable("timer", timer)
    check_callable("on_evict", on_evict, optional=True)
    return size, seconds, nbytes


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
    # entries dropped because their key could no longer be found (its hash changed after
    # it was stored): a user's mistake a plain dict would also lose the entry to
    lost: int = 0

    @property
    def evictions(self) -> int:
        """Evictions for every reason."""
        return self.evictions_size + self.evictions_bytes + self.evictions_ttl

    def to_dict(self) -> dict[str, int | None]:
        """JSON-safe form, the total of evictions included."""
        data: dict[str, int | None] = asdict(self)
        data["evictions"] = self.evictions
        if not self.lost:  # shown only once it happens: the usual row stays as it was
            del data["lost"]
        return data


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
        "_lock_free_reads",
        "_lost",
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
        self._maxsize, self._ttl, self._max_bytes = _check_config(
            maxsize, ttl, max_bytes, getsizeof, timer, on_evict
        )
        check_str("name", name, optional=True)
        if getsizeof is None and self._max_bytes is not None:
            getsizeof = default_getsizeof
        # bytes are accounted when bounded by max_bytes or when a getsizeof is given
        self._getsizeof: Callable[[K, V], int] | None = getsizeof
        self._sizes: dict[K, int] | None = {} if getsizeof is not None else None
        self._bytes = 0
        self._overhead = ENTRY_OVERHEAD_BYTES + (TTL_OVERHEAD_BYTES if ttl is not None else 0)
        self._timer = timer
        self._on_evict = on_evict
        self._lock = threading.Lock()
        # read on every hit; False while a copy of the LRU order needs the hits to wait
        self._lock_free_reads = _LOCK_FREE_READS
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
        self._lost = 0
        self._flights: dict[K, _Flight] = {}
        self._aflights: dict[tuple[K, asyncio.AbstractEventLoop], _AsyncFlight] = {}
        # unnamed, it is named after the line that made it: stable across processes
        self._name = register(self, "BoundedCache", name, clear=True)
        reset_after_fork(self)

    def _reset_after_fork(self) -> None:
        # in a forked child only the forking thread exists: a lock another thread held
        # stays held, and a flight it led never ends (its waiters here would wait forever)
        self._lock = threading.Lock()
        self._lock_free_reads = _LOCK_FREE_READS
        me = threading.get_ident()
        self._flights = {k: f for k, f in self._flights.items() if f.owner == me}

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
    def name(self) -> str:
        """The name shown in snapshots (given, or where the cache was made)."""
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

    # The lock-free hit is written out in __getitem__, get, _get_or_call and aget_or_set
    # rather than shared: a helper call costs 15-45% on those hits (12-19% on
    # aget_or_set). Everything after a lock-free miss is shared (_read_locked).

    def __getitem__(self, key: K) -> V:
        if self._lock_free_reads:
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
        if self._lock_free_reads:
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
        with self._lock:
            value, expired = self._read_locked(key, count=True)
        self._notify(expired)
        return value

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
            value, expired = self._find_locked(key)  # an expired key: same as absent
            if value is not _MISSING:
                del self._data[key]
                self._forget_locked(key)
                return
        self._notify(expired)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            value, expired = self._find_locked(cast(K, key))
        self._notify(expired)
        return value is not _MISSING

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
        with self._lock:
            value, expired = self._find_locked(key)
            if value is not _MISSING:
                del self._data[key]
                self._forget_locked(key)
                return value
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
        if self._lock_free_reads:
            expires = self._expires
            try:
                if expires is None or expires[key] > self._timer():
                    value = self._data[key]
                    self._data.move_to_end(key)
                    next(self._hits)
                    return value
            except KeyError:
                pass  # a miss: counted in load, under the lock
        return _cache_flight.load(self, key, func, args, kwargs)

    async def aget_or_set(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        """Async get_or_set: on a miss await ``factory()`` once per event loop, store the result.

        Concurrent awaiters of the key share one call and its value or exception; a
        failure is not cached. Cancelling one awaiter leaves the call running for the
        others; when the last awaiter is cancelled the call is cancelled too.
        """
        if self._lock_free_reads:
            expires = self._expires
            try:
                if expires is None or expires[key] > self._timer():
                    value = self._data[key]
                    self._data.move_to_end(key)
                    next(self._hits)
                    return value
            except KeyError:
                pass  # a miss: counted in aload, under the lock
        return await _cache_flight.aload(self, key, factory)

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
                lost=self._lost,
            )

    def memscope_stats(self) -> dict[str, int]:
        """What the ``tracked`` snapshot section shows for this cache."""
        s = self.stats()
        out = {
            "entries": s.entries,
            "maxsize": self._maxsize,
            "hits": s.hits,
            "misses": s.misses,
            "evictions": s.evictions,  # all reasons: what a diff leads with
            "evictions_size": s.evictions_size,
            "evictions_bytes": s.evictions_bytes,
            "evictions_ttl": s.evictions_ttl,
        }
        if s.lost:
            out["lost"] = s.lost
        if s.bytes is not None:
            out["size_bytes"] = s.bytes
        else:
            out["size_bytes"] = self._estimate_bytes()
            out["size_estimated"] = True
        return out

    def _estimate_bytes(self, sample: int = 64) -> int:
        """The dict plus its entries, from a sample: never a copy of the whole cache."""

        def read(data: OrderedDict[K, V]) -> tuple[int, list[K], list[Any], int]:
            keys = list(itertools.islice(data, sample))
            return len(data), keys, [data.get(k) for k in keys], sys.getsizeof(data)

        n, keys, values, container = self._snapshot(read)
        if not keys:
            return container
        part = sum(map(sys.getsizeof, keys)) + sum(map(sys.getsizeof, values))
        return container + part * n // len(keys)

    def _reset_stats(self) -> None:
        with self._lock:
            self._hits = itertools.count()
            self._misses = itertools.count()
            self._ev_size = self._ev_bytes = self._ev_ttl = self._lost = 0

    # -- internals (names ending in _locked expect the lock held) ------------------------------

    def _measure(self, key: K, value: V) -> int:
        getsizeof = cast(Callable[[K, V], int], self._getsizeof)
        size = getsizeof(key, value)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TypeError(
                f"getsizeof must return an int >= 0, returned {size!r} for {short_repr(key)}"
            )
        total = size + self._overhead
        if self._max_bytes is not None and total > self._max_bytes:
            raise ValueError(
                f"item {short_repr(key)} is {total} bytes ({size} + {self._overhead} per-entry "
                f"overhead), larger than max_bytes={self._max_bytes}; not stored"
            )
        return total

    def _store_locked(self, key: K, value: V, size: int) -> list[tuple[K, V, EvictReason]] | None:
        expires = self._expires
        # the user's timer runs before anything changes: if it fails, nothing was stored
        # (after the value it would leave an entry without an expiry record)
        now = self._timer() if expires is not None else 0.0
        data = self._data
        data[key] = value
        data.move_to_end(key)
        sizes = self._sizes
        evicted: list[tuple[K, V, EvictReason]] | None = None
        if expires is not None:
            expires[key] = now + cast(float, self._ttl)
            expires.move_to_end(key)
        if sizes is not None:
            self._bytes += size - sizes.get(key, 0)
            sizes[key] = size
        # every record of the new entry exists before the sweep, which may repair
        if expires is not None:
            evicted = self._sweep_locked(_SWEEP_PER_WRITE, now)
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

    def _find_locked(self, key: K) -> tuple[Any, list[tuple[K, V, EvictReason]] | None]:
        """The value of ``key`` if live, else _MISSING; and the entry removed because it
        had expired, for _notify once the lock is released. Neither reorders nor counts."""
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING, None
        expires = self._expires
        if expires is None:
            return value, None
        expires_at = expires.get(key)
        if expires_at is None:  # a record lost to a user's mistake: see _repair_locked
            self._repair_locked()
            return _MISSING, None
        if expires_at > self._timer():
            return value, None
        return _MISSING, self._drop_locked(key)

    def _read_locked(
        self, key: K, *, count: bool
    ) -> tuple[Any, list[tuple[K, V, EvictReason]] | None]:
        """_find_locked for a read: a live value is marked recently used; ``count`` counts
        the hit or miss. The locked read after every lock-free miss."""
        value, expired = self._find_locked(key)
        if value is not _MISSING:
            self._data.move_to_end(key)
            if count:
                next(self._hits)
        elif count:
            next(self._misses)
        return value, expired

    def _forget_locked(self, key: K) -> float | None:
        """Drop ``key``'s expiry and size records (its value is already gone); its expiry."""
        expires_at = None
        broken = False
        if self._expires is not None:
            expires_at = self._expires.pop(key, None)
            broken = expires_at is None
        if self._sizes is not None:
            size = self._sizes.pop(key, None)
            if size is None:
                broken = True
            else:
                self._bytes -= size
        if broken:  # the key's hash changed since it was stored: its records are stale
            self._repair_locked()
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
        try:
            n = _count_expired(expires, now, limit)
        except KeyError:  # the walk hashes each key: one whose hash changed is not found
            self._repair_locked()
            n = _count_expired(expires, now, limit)
        if n:
            data = self._data
            sizes = self._sizes
            broken = False
            for _ in range(n):
                # popitem finds the record by the hash stored with it; the pops below hash
                # the key again, which finds nothing if the user changed its hash
                key, _at = expires.popitem(last=False)
                value = data.pop(key, _MISSING)
                size = sizes.pop(key, None) if sizes is not None else 0
                if value is _MISSING or size is None:
                    broken = True
                    continue
                self._bytes -= size
                evicted.append((key, value, "ttl"))
            self._ev_ttl += len(evicted)
            if broken:
                self._repair_locked()
        return evicted

    def _repair_locked(self) -> None:
        """Make the entries and their expiry and size records agree again.

        Called where a record that must exist is not found: a key whose hash changed
        after it was stored (a mutable key) is no longer found by its hash, and every
        later operation reaching it would fail. An entry that cannot be found by its key
        in every record is dropped and counted in ``lost``; the LRU and expiry order of
        the rest is kept. O(n), and only after such a mistake.
        """
        data, expires, sizes = self._data, self._expires, self._sizes
        # dict.keys walks the table itself (no hashing), so it sees every entry
        live = {id(k) for k in list(dict.keys(data)) if _finds(data, k)}
        if expires is not None:
            live &= {id(k) for k in list(dict.keys(expires)) if _finds(expires, k)}
        if sizes is not None:
            live &= {id(k) for k in list(sizes) if _finds(sizes, k)}
        # rebuilt in place (locked code may hold these objects); popitem finds each node
        # by its stored hash, so it drains even the broken ones, in order
        entries = _drain(data)
        for key, value in entries:
            if id(key) in live:
                data[key] = value
            else:
                self._lost += 1
        if expires is not None:
            for key, at in _drain(expires):
                if id(key) in live:
                    expires[key] = at
        if sizes is not None:
            kept = [(k, size) for k, size in list(sizes.items()) if id(k) in live]
            sizes.clear()
            sizes.update(kept)
            self._bytes = sum(sizes.values())
        del entries  # kept alive until here, so no id above was reused

    def _notify(self, evicted: list[tuple[K, V, EvictReason]] | None) -> None:
        on_evict = self._on_evict
        if on_evict is None or not evicted:
            return
        for key, value, reason in evicted:
            try:
                on_evict(key, value, reason)
            except Exception:  # a broken callback must not break the cache or its caller
                log.exception(
                    "memscope: on_evict of cache %r failed for key %s", self._name, short_repr(key)
                )

    def _copy(self, *, keys: bool) -> list[Any]:
        self.expire()
        return self._snapshot(lambda data: _copy_of(data, keys=keys))

    def _snapshot(self, read: Callable[[OrderedDict[K, V]], _T]) -> _T:
        """``read(self._data)`` under the lock, as if no lock-free hit ran meanwhile.

        Walking an OrderedDict hashes each key to find its node, and a key's Python-level
        __hash__/__eq__ lets other threads run: a lock-free hit's move_to_end then makes
        the walk raise, or silently end early or see a key twice (the key under the
        cursor moved to the end). ``read`` raises _Torn for the silent cases. The first
        try leaves the hits lock-free; after a torn walk the hits take the lock until the
        walk is done, so only hits already past that check interfere, one each at most.
        """
        with self._lock:
            try:
                for _ in range(threading.active_count() + 2):
                    try:
                        return read(self._data)
                    except KeyError as exc:
                        key = exc.args[0] if exc.args else _MISSING
                        if not _finds(self._data, key):
                            # a key whose hash changed after it was stored: its node is
                            # not found by that hash, and never will be
                            self._lock_free_reads = False
                            self._repair_locked()
                            continue
                        if not _LOCK_FREE_READS:
                            raise
                    except RuntimeError:  # _Torn included
                        if not _LOCK_FREE_READS:
                            raise  # no lock-free reader exists: the error is a key's own
                    self._lock_free_reads = False
                return read(self._data)
            finally:
                self._lock_free_reads = _LOCK_FREE_READS


class _Torn(RuntimeError):
    """A walk of the LRU order that a concurrent lock-free hit reordered."""


def _copy_of(data: OrderedDict[Any, Any], *, keys: bool) -> list[Any]:
    n = len(data)
    # one walk for keys and values: two would pair keys with values of other keys when
    # a hit reorders between them
    out: list[Any] = list(data) if keys else list(data.items())
    # every key exactly once, or a concurrent move_to_end tore the walk (ids: no hashing)
    ids = set(map(id, out if keys else [k for k, _v in out]))
    if len(out) != n or len(ids) != n:
        raise _Torn
    return out


def _count_expired(expires: OrderedDict[Any, float], now: float, limit: int | None) -> int:
    """How many of the oldest records have expired by ``now`` (at most ``limit``)."""
    n = 0
    for at in expires.values():
        if at > now or (limit is not None and n >= limit):
            break
        n += 1
    return n


def _finds(table: dict[Any, Any], key: object) -> bool:
    """Whether ``key`` is found in ``table`` by its hash now (a key that fails to hash is not)."""
    try:
        return dict.__contains__(table, key)
    except Exception:
        return False


def _drain(table: OrderedDict[Any, Any]) -> list[tuple[Any, Any]]:
    """Every (key, value) of ``table`` in order, emptying it."""
    items = []
    while table:
        items.append(table.popitem(last=False))
    return items


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
