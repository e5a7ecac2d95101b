"""Per-key lock tables whose entries disappear when no one holds or waits on them.

The naive ``locks = defaultdict(threading.Lock)`` keeps one lock per key ever seen:
one per tenant, profile or URL, for the life of the process. ``KeyedLocks`` counts
the holders and waiters of each key and drops the entry when that count falls to
zero, so the table is as large as the current contention, never the key history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Any

from .._base.validate import check_bool, check_number, check_str
from ._fork import reset_after_fork
from ._naming import register


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.users = 0  # holders + waiters; the entry goes when this reaches zero


class _Stats:
    __slots__ = ("acquisitions_total", "contended_total", "peak_keys")

    def __init__(self) -> None:
        self.acquisitions_total = 0
        self.contended_total = 0
        self.peak_keys = 0


class _KeyTable:
    """What both tables share: entries counted by their users, dropped at zero, and stats.

    The ``_locked`` methods expect the table's exclusion held: KeyedLocks' mutex, or,
    for AsyncKeyedLocks, running on its event loop without an await in between.
    """

    _kind = ""  # the class name shown in names and reprs (a subclass keeps its base's)

    def __init__(self, name: str | None) -> None:
        check_str("name", name, optional=True)
        self._entries: dict[Hashable, _Entry] = {}
        self._stats = _Stats()
        # named or not, the table shows in snapshots; unnamed, after the line that made it
        self.name: str = register(self, self._kind, name)

    def __len__(self) -> int:
        """Keys currently held or waited on."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        return f"<{self._kind} name={self.name!r} keys={len(self._entries)}>"

    @staticmethod
    def _check_call(key: Hashable, timeout: float | None) -> None:
        hash(key)  # an unhashable key fails here, before any state changes
        check_number("timeout", timeout, low=0.0, optional=True, unit="seconds")

    def _join_locked(self, key: Hashable, make_lock: Callable[[], Any]) -> _Entry:
        """The entry of ``key`` (made with a new lock if none), with one more user."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(make_lock())
            if len(self._entries) > self._stats.peak_keys:
                self._stats.peak_keys = len(self._entries)
        entry.users += 1
        return entry

    def _leave_locked(self, key: Hashable, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and self._entries.get(key) is entry:
            del self._entries[key]

    def _stats_locked(self) -> dict[str, Any]:
        return {
            "keys": len(self._entries),
            "peak_keys": self._stats.peak_keys,
            "acquisitions_total": self._stats.acquisitions_total,
            "contended_total": self._stats.contended_total,
        }


class KeyedLocks(_KeyTable):
    """A ``threading.Lock`` per key, created on demand and dropped when unused (thread-safe).

    ``with locks("profile-a"): ...`` serialises work on one key while other keys
    run in parallel. ``reentrant=True`` uses ``threading.RLock``. ``name`` tracks
    the table with :func:`memscope.track` so its size shows in snapshots.
    """

    _kind = "KeyedLocks"

    def __init__(self, *, reentrant: bool = False, name: str | None = None) -> None:
        self.reentrant = check_bool("reentrant", reentrant)
        self._mutex = threading.Lock()
        super().__init__(name)
        reset_after_fork(self)

    def _reset_after_fork(self) -> None:
        # the parent's other threads are gone in the child: the locks they held or waited
        # on would stay held, so the child starts with no key locked (a lock the forking
        # thread itself held is not held here either: its release() raises RuntimeError)
        self._mutex = threading.Lock()
        self._entries = {}

    def __call__(self, key: Hashable, timeout: float | None = None) -> _LockContext:
        """A context manager holding the lock of ``key``; ``timeout`` raises TimeoutError."""
        self._check_call(key, timeout)
        return _LockContext(self, key, timeout)

    def _enter(self, key: Hashable) -> _Entry:
        with self._mutex:
            return self._join_locked(key, threading.RLock if self.reentrant else threading.Lock)

    def _leave(self, key: Hashable, entry: _Entry) -> None:
        with self._mutex:
            self._leave_locked(key, entry)

    def acquire(self, key: Hashable, timeout: float | None = None) -> bool:
        """Acquire the lock of ``key``; False when ``timeout`` passes first (nothing held then)."""
        # checked here too, not only in __call__: NaN returned False at once, inf raised
        # OverflowError only when contended, and '1' was accepted while uncontended
        self._check_call(key, timeout)
        entry = self._enter(key)
        acquired: bool = False
        try:
            acquired = bool(entry.lock.acquire(blocking=False))
            if not acquired:
                with self._mutex:
                    self._stats.contended_total += 1
                if timeout is None:
                    acquired = bool(entry.lock.acquire())
                elif timeout > 0:
                    acquired = bool(entry.lock.acquire(timeout=timeout))
        finally:
            # interrupted or timed out: this caller no longer waits, so it no longer counts
            if not acquired:
                self._leave(key, entry)
        if acquired:
            with self._mutex:
                self._stats.acquisitions_total += 1
        return acquired

    def release(self, key: Hashable) -> None:
        """Release the lock of ``key`` held by this caller (RuntimeError if it is not held)."""
        with self._mutex:
            entry = self._entries.get(key)
        if entry is None:
            raise RuntimeError(f"release({key!r}): that key's lock is not held")
        entry.lock.release()
        self._leave(key, entry)

    def locked(self, key: Hashable) -> bool:
        """Whether someone holds the lock of ``key`` right now."""
        with self._mutex:
            entry = self._entries.get(key)
        if entry is None:
            return False
        probe = getattr(entry.lock, "locked", None)
        if callable(probe):
            return bool(probe())
        return entry.users > 0  # an RLock cannot say; held-or-waited is the best answer

    def memscope_stats(self) -> dict[str, Any]:
        """Statistics shown in memscope snapshots."""
        with self._mutex:
            return self._stats_locked()


class _Context:
    __slots__ = ("_key", "_locks", "_timeout")

    def __init__(self, locks: Any, key: Hashable, timeout: float | None) -> None:
        self._locks = locks
        self._key = key
        self._timeout = timeout

    def _timed_out(self) -> TimeoutError:
        return TimeoutError(f"could not acquire the lock of {self._key!r} within {self._timeout} s")


class _LockContext(_Context):
    __slots__ = ()
    _locks: KeyedLocks

    def __enter__(self) -> None:
        if not self._locks.acquire(self._key, self._timeout):
            raise self._timed_out()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._locks.release(self._key)


class AsyncKeyedLocks(_KeyTable):
    """An ``asyncio.Lock`` per key, created on demand and dropped when unused (one event loop).

    ``async with locks("profile-a"): ...``. Not thread-safe: use it from the event
    loop that runs the tasks. A task cancelled while waiting leaves no entry behind.
    """

    _kind = "AsyncKeyedLocks"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name)

    def __call__(self, key: Hashable, timeout: float | None = None) -> _AsyncLockContext:
        """An async context manager holding the lock of ``key``; ``timeout`` raises TimeoutError."""
        self._check_call(key, timeout)
        return _AsyncLockContext(self, key, timeout)

    async def acquire(self, key: Hashable, timeout: float | None = None) -> bool:
        """Acquire the lock of ``key``; False when ``timeout`` passes first."""
        import asyncio  # here, not at import: the threading flavour should not pay for it

        self._check_call(key, timeout)  # a NaN timeout waited forever when contended
        entry = self._join_locked(key, asyncio.Lock)
        lock = entry.lock
        acquired = False
        try:
            if lock.locked():
                self._stats.contended_total += 1
            if timeout is None:
                acquired = await lock.acquire()
            else:
                try:
                    acquired = await asyncio.wait_for(lock.acquire(), timeout)
                except asyncio.TimeoutError:
                    acquired = False
        finally:
            if not acquired:
                self._leave_locked(key, entry)
        if acquired:
            self._stats.acquisitions_total += 1
        return acquired

    def release(self, key: Hashable) -> None:
        """Release the lock of ``key`` (RuntimeError if it is not held)."""
        entry = self._entries.get(key)
        if entry is None or not entry.lock.locked():
            raise RuntimeError(f"release({key!r}): that key's lock is not held")
        entry.lock.release()
        self._leave_locked(key, entry)

    def locked(self, key: Hashable) -> bool:
        """Whether some task holds the lock of ``key`` right now."""
        entry = self._entries.get(key)
        return entry is not None and bool(entry.lock.locked())

    def memscope_stats(self) -> dict[str, Any]:
        """Statistics shown in memscope snapshots."""
        return self._stats_locked()


class _AsyncLockContext(_Context):
    __slots__ = ()
    _locks: AsyncKeyedLocks

    async def __aenter__(self) -> None:
        if not await self._locks.acquire(self._key, self._timeout):
            raise self._timed_out()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._locks.release(self._key)
