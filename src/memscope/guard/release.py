"""``release_memory()``: collect garbage, expire tracked caches, hand freed heap back to the OS.

After a large burst of allocations is freed, RSS often stays high: the C allocator
keeps freed pages for reuse, and pymalloc keeps any arena that still holds one live
object. ``release_memory()`` does what can be done from inside the process (a full
``gc.collect()``, ``expire()`` on tracked caches, then glibc ``malloc_trim(0)`` or
macOS ``malloc_zone_pressure_relief``) and returns a :class:`ReleaseReport` that says
in plain words what it freed, and why RSS stayed high when it did.

Thread-safety: one pass runs at a time per :class:`MemoryReleaser`. A caller that
arrives while a pass is running does not wait: it gets ``skipped=True`` with
``skip_reason="busy"``, since the running pass is already doing the work. This
keeps a hot path (a request handler calling ``release_memory(min_interval=60)``)
from ever blocking on it.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Sized
from dataclasses import asdict, dataclass
from typing import Any

from .._base import libc, tracking
from .._base.libc import ReleaseMethod, release_method
from .._base.proc import rss_bytes
from .._base.units import format_bytes
from .._base.validate import check_bool, check_callable, check_number
from ._fork import reset_after_fork

__all__ = [
    "MemoryReleaser",
    "ReleaseReport",
    "malloc_trim_available",
    "release_memory",
    "release_memory_async",
    "release_method",
]

log = logging.getLogger("memscope")

# a change smaller than this is noise (page-cache accounting, the report itself)
NOTICEABLE_BYTES = 1 << 20
# contained failures kept on a report; the list never grows past this
MAX_ERRORS = 8


@dataclass(frozen=True)
class ReleaseReport:
    """What one ``release_memory()`` call did, measured, with an explanation in plain words.

    RSS fields are None when the pass was skipped (nothing ran, nothing was measured)
    or when RSS cannot be read on this platform.
    """

    rss_before_bytes: int | None
    rss_after_bytes: int | None
    freed_bytes: int | None  # rss_before - rss_after; negative when RSS grew meanwhile
    collected: int  # unreachable objects gc.collect() found
    expired: int  # cache entries expired by tracked caches' expire()
    method: ReleaseMethod
    trimmed: bool  # the allocator said it gave memory back to the OS
    seconds: float
    skipped: bool
    explanation: str
    skip_reason: str | None = None  # "throttled", "busy" or "error" when skipped
    pymalloc_arena_bytes: int | None = None  # after the pass
    pymalloc_utilisation: float | None = None  # after the pass: in-use / arena bytes
    errors: tuple[str, ...] = ()  # contained failures (a cache whose expire() raised, ...)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        data = asdict(self)
        data["errors"] = list(self.errors)
        return data

    def __str__(self) -> str:
        if self.skipped:
            return f"release_memory skipped ({self.skip_reason}): {self.explanation}"
        rss = ""
        if self.rss_before_bytes is not None and self.rss_after_bytes is not None:
            rss = (
                f"RSS {format_bytes(self.rss_before_bytes)} -> "
                f"{format_bytes(self.rss_after_bytes)}, "
            )
        return (
            f"release_memory: {rss}{self.collected} objects collected, "
            f"{self.expired} cache entries expired, {self.method}"
            f"{' (trimmed)' if self.trimmed else ''}, {self.seconds:.3f} s. {self.explanation}"
        )


def malloc_trim_available() -> bool:
    """True when glibc ``malloc_trim`` can be called in this process."""
    return release_method() == "malloc_trim"


def _check_min_interval(min_interval: object) -> float | None:
    # checked both in release_memory and, before the thread hop, in release_memory_async
    seconds: float | None = check_number(
        "min_interval", min_interval, low=0.0, optional=True, unit="seconds"
    )
    return seconds


def _expire_count(result: object) -> int:
    """How many entries an ``expire()`` call reports: an int, or the expired items it returns."""
    if isinstance(result, int) and not isinstance(result, bool):
        return max(result, 0)
    if isinstance(result, Sized) and not isinstance(result, (str, bytes)):
        return len(result)  # cachetools' expire() returns the expired (key, value) pairs
    # None or anything else: unknown. len() before and after is no help, because
    # cachetools' TTLCache.__len__ itself expires entries.
    return 0


class MemoryReleaser:
    """Runs release passes, one at a time, throttled on an injectable monotonic clock."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rss: Callable[[], int | None] = rss_bytes,
        trim: Callable[[], tuple[ReleaseMethod, bool]] = libc.trim,
    ) -> None:
        # checked now: a pass contains every failure, so a bad one would only show as errors
        self._clock: Callable[[], float] = check_callable("clock", clock)
        self._rss: Callable[[], int | None] = check_callable("rss", rss)
        self._trim: Callable[[], tuple[ReleaseMethod, bool]] = check_callable("trim", trim)
        self._lock = threading.Lock()
        self._last_start: float | None = None
        reset_after_fork(self)

    def _reset_after_fork(self) -> None:
        # a pass running in another thread at the fork never finishes in the child: its
        # lock would make every later pass there skip as "busy"
        self._lock = threading.Lock()

    def release(
        self,
        *,
        min_interval: float | None = None,
        collect: bool = True,
        expire: bool = True,
        trim: bool = True,
    ) -> ReleaseReport:
        """One pass (see :func:`release_memory`); never raises except on bad arguments."""
        interval = _check_min_interval(min_interval)
        check_bool("collect", collect)
        check_bool("expire", expire)
        check_bool("trim", trim)
        if not self._lock.acquire(blocking=False):
            return _skipped("busy", "another release_memory() pass was running; it does the work")
        try:
            try:
                now = self._clock()
            except Exception as exc:  # a broken injected clock must not raise into the host
                return _skipped("error", f"the clock failed: {type(exc).__name__}: {exc}")
            last = self._last_start
            if interval and last is not None and now - last < interval:
                return _skipped(
                    "throttled",
                    f"the last pass started {now - last:.3f} s ago; min_interval={interval:g} s",
                )
            self._last_start = now
            return self._run(collect=collect, expire=expire, trim=trim)
        finally:
            self._lock.release()

    def _run(self, *, collect: bool, expire: bool, trim: bool) -> ReleaseReport:
        started = time.perf_counter()
        errors: list[str] = []
        before = self._read_rss(errors)
        expired = _expire_tracked(errors) if expire else 0
        collected = 0
        if collect:
            try:
                collected = gc.collect()
            except Exception as exc:  # a finalizer that escapes must not reach the caller
                _note(errors, f"gc.collect(): {type(exc).__name__}: {exc}")
        method: ReleaseMethod = "none"
        trimmed = False
        if trim:
            try:
                method, trimmed = self._trim()
            except Exception as exc:
                _note(errors, f"trim: {type(exc).__name__}: {exc}")
        after = self._read_rss(errors)
        stats = _allocator_stats(errors)
        freed = before - after if before is not None and after is not None else None
        seconds = time.perf_counter() - started
        explanation = explain(
            freed_bytes=freed,
            rss_after_bytes=after,
            method=method,
            trimmed=trimmed,
            trim_requested=trim,
            stats=stats,
        )
        utilisation = stats.get("pymalloc_utilisation")
        arena_bytes = stats.get("pymalloc_arena_bytes")
        return ReleaseReport(
            rss_before_bytes=before,
            rss_after_bytes=after,
            freed_bytes=freed,
            collected=collected,
            expired=expired,
            method=method,
            trimmed=trimmed,
            seconds=seconds,
            skipped=False,
            explanation=explanation,
            pymalloc_arena_bytes=arena_bytes if isinstance(arena_bytes, int) else None,
            pymalloc_utilisation=float(utilisation) if utilisation is not None else None,
            errors=tuple(errors),
        )

    def _read_rss(self, errors: list[str]) -> int | None:
        try:
            return self._rss()
        except Exception as exc:
            _note(errors, f"rss: {type(exc).__name__}: {exc}")
            return None


def _note(errors: list[str], message: str) -> None:
    log.debug("memscope.release_memory: %s", message)
    if len(errors) < MAX_ERRORS:
        errors.append(message)


def _skipped(reason: str, explanation: str) -> ReleaseReport:
    return ReleaseReport(
        rss_before_bytes=None,
        rss_after_bytes=None,
        freed_bytes=None,
        collected=0,
        expired=0,
        method="none",
        trimmed=False,
        seconds=0.0,
        skipped=True,
        explanation=f"Skipped, nothing ran: {explanation}.",
        skip_reason=reason,
    )


def _expire_tracked(errors: list[str]) -> int:
    total = 0
    for name, obj, _clearable in tracking.tracked_objects():
        try:
            # a __getattr__ that raises (KeyError from a mapping-like proxy) is contained too
            expire = getattr(obj, "expire", None)
            if not callable(expire):
                continue
            result = expire()
            total += _expire_count(result)
            del result  # cachetools hands back the expired pairs: let them go before gc
        except Exception as exc:  # one broken cache must not stop the others
            _note(errors, f"{name}.expire(): {type(exc).__name__}: {exc}")
    return total


def _allocator_stats(errors: list[str]) -> dict[str, Any]:
    try:
        info = libc.libc_info()
        data = libc.pymalloc_fields(*libc.pymalloc_stats())
        data["libc"] = f"{info.name} {info.version}" if info.version else info.name
        return data
    except Exception as exc:
        _note(errors, f"allocator statistics: {type(exc).__name__}: {exc}")
        return {}


def explain(
    *,
    freed_bytes: int | None,
    rss_after_bytes: int | None,
    method: ReleaseMethod,
    trimmed: bool,
    trim_requested: bool,
    stats: dict[str, Any],
) -> str:
    """Plain words for a finished pass: what came back, and what is still held and why."""
    parts: list[str] = []
    if freed_bytes is None:
        parts.append("RSS could not be read here, so what came back is unknown.")
    elif freed_bytes >= NOTICEABLE_BYTES:
        parts.append(f"Returned {format_bytes(freed_bytes)} to the OS.")
    else:
        parts.append("RSS did not fall noticeably.")
    if not trim_requested:
        parts.append("The allocator was not asked to trim (trim=False).")
    elif method == "none":
        libc_name = stats.get("libc") or sys.platform
        parts.append(
            f"This platform ({libc_name}) has no call that hands freed heap back to the OS "
            "(malloc_trim is glibc-only, malloc_zone_pressure_relief macOS-only), so only "
            "garbage collection ran; musl's malloc unmaps large freed blocks by itself."
        )
    elif not trimmed and freed_bytes is not None and freed_bytes < NOTICEABLE_BYTES:
        parts.append(f"{method} found no free pages to release.")
    pinned = libc.pinned_arenas_advice(stats)
    if pinned is not None:
        parts.append(pinned)
    elif freed_bytes is not None and freed_bytes < NOTICEABLE_BYTES and rss_after_bytes:
        parts.append(
            "What stays resident is in use: live Python objects (snapshot(deep=True) shows "
            "which), memory held by C extensions' own allocators, or pages malloc keeps "
            "between live blocks."
        )
    return " ".join(parts)


_default = MemoryReleaser()


def release_memory(
    *,
    min_interval: float | None = None,
    collect: bool = True,
    expire: bool = True,
    trim: bool = True,
) -> ReleaseReport:
    """gc.collect(), expire tracked caches, return freed heap to the OS; report what happened.

    ``min_interval`` (seconds, monotonic) makes it safe to call on every request: a
    call within ``min_interval`` of the last pass returns ``skipped=True`` at once.
    A call made while another thread's pass runs also returns ``skipped=True``
    (``skip_reason="busy"``) instead of waiting. Never raises except on bad arguments.
    """
    return _default.release(min_interval=min_interval, collect=collect, expire=expire, trim=trim)


async def release_memory_async(**kwargs: Any) -> ReleaseReport:
    """:func:`release_memory` in a worker thread, so the event loop keeps serving meanwhile."""
    import asyncio

    # validate here, so a bad argument raises in the caller's task with a clear message
    _check_min_interval(kwargs.get("min_interval"))
    unknown = set(kwargs) - {"min_interval", "collect", "expire", "trim"}
    if unknown:
        raise TypeError(
            f"release_memory_async() got unexpected argument(s) {sorted(unknown)}; "
            "accepted: min_interval, collect, expire, trim"
        )
    return await asyncio.to_thread(release_memory, **kwargs)
