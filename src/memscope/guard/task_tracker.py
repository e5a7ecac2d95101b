"""TaskTracker: fire-and-forget asyncio work that is neither lost nor leaked.

``asyncio.create_task(work())`` with no reference kept can be garbage-collected
mid-flight (the event loop holds tasks weakly), its exception surfaces only as
"Task exception was never retrieved" at some later GC, and the usual fix,
``background.add(task)`` without a matching ``discard``, is a set that only grows.
A TaskTracker holds each task strongly exactly until it ends, logs its failure,
bounds how many run at once, and cancels the rest on ``close()``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._base.validate import check_callable, check_int, check_number, check_str
from ._checks import check_logger
from ._naming import register

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

log = logging.getLogger("memscope.guard")


class TaskLimitError(RuntimeError):
    """``spawn()`` was called while ``limit`` tasks were already running."""


def _check_args(coro: Coroutine[Any, Any, Any], name: object, timeout: object = None) -> None:
    """The arguments of spawn and submit; a refused call closes ``coro`` (never awaited)."""
    try:
        check_str("name", name, optional=True)
        check_number("timeout", timeout, low=0.0, optional=True, unit="seconds")
    except (TypeError, ValueError):
        coro.close()
        raise


class TaskTracker:
    """Holds fire-and-forget asyncio tasks until they end (use it from one event loop).

    ``spawn(coro)`` starts a task now (TaskLimitError when ``limit`` tasks run);
    ``await submit(coro)`` waits for a free slot first (back-pressure).
    ``await close(timeout)`` cancels what is left. The tracker registers itself with
    :func:`memscope.track` under ``name`` (unnamed, under where it was made), so its
    live count shows in snapshots, and
    logs a warning when the live count has only grown over ``growth_window``
    checks taken at most every ``growth_interval`` seconds.
    """

    def __init__(
        self,
        *,
        limit: int | None = None,
        name: str | None = None,
        on_error: Callable[[asyncio.Task[Any], BaseException], object] | None = None,
        growth_interval: float = 60.0,
        growth_window: int = 5,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        # limit=None is unbounded
        self.limit: int | None = check_int("limit", limit, low=1, optional=True)
        check_str("name", name, optional=True)
        self.on_error: Callable[[asyncio.Task[Any], BaseException], object] | None = check_callable(
            "on_error", on_error, optional=True
        )
        self.growth_interval: float = check_number(
            "growth_interval", growth_interval, low=0.0, unit="seconds"
        )
        self.growth_window: int = check_int("growth_window", growth_window, low=2)
        # checked now: spawn() calls them only after the task has started
        self._clock: Callable[[], float] = check_callable("clock", clock)
        self._log = check_logger(logger) if logger is not None else log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self._growth: collections.deque[int] = collections.deque(maxlen=growth_window)
        self._last_growth_check: float | None = None
        self.peak = 0
        self.spawned_total = 0
        self.failed_total = 0
        self.cancelled_total = 0
        self.rejected_total = 0
        self.growth_warnings_total = 0
        self.name: str = register(self, "TaskTracker", name)

    def __len__(self) -> int:
        """Tasks still running."""
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<TaskTracker name={self.name!r} live={len(self._tasks)} limit={self.limit}>"

    @property
    def closed(self) -> bool:
        """Whether close() was called (spawn then raises)."""
        return self._closed

    @property
    def full(self) -> bool:
        """Whether ``limit`` tasks are running now."""
        return self.limit is not None and len(self._tasks) >= self.limit

    def tasks(self) -> list[asyncio.Task[Any]]:
        """A copy of the live tasks."""
        return list(self._tasks)

    def _reject(self, coro: object, error: Exception) -> Exception:
        # close the coroutine so it does not also warn "coroutine ... was never awaited"
        close = getattr(coro, "close", None)
        if callable(close):
            close()
        self.rejected_total += 1
        return error

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start ``coro`` as a task held until it ends; TaskLimitError when full."""
        import asyncio

        if not asyncio.iscoroutine(coro):
            raise TypeError(f"coro must be a coroutine object, got {type(coro).__name__}")
        _check_args(coro, name)
        if self._closed:
            raise self._reject(coro, RuntimeError(f"TaskTracker {self.name!r} is closed"))
        if self.full:
            raise self._reject(
                coro,
                TaskLimitError(
                    f"TaskTracker {self.name!r} already runs limit={self.limit} tasks; "
                    "await submit(...) to wait for a slot instead"
                ),
            )
        try:
            task = asyncio.get_running_loop().create_task(coro, name=name)
        except RuntimeError:
            raise self._reject(
                coro, RuntimeError("spawn() must be called from a running event loop")
            ) from None
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        self.spawned_total += 1
        if len(self._tasks) > self.peak:
            self.peak = len(self._tasks)
        self.check_growth()
        return task

    async def submit(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> asyncio.Task[T]:
        """Wait (up to ``timeout`` s) for a free slot, then spawn ``coro``."""
        import asyncio

        if not asyncio.iscoroutine(coro):
            raise TypeError(f"coro must be a coroutine object, got {type(coro).__name__}")
        # a NaN timeout made the wait for a slot endless
        _check_args(coro, name, timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while self.full and not self._closed:
                waiter: asyncio.Future[None] = loop.create_future()
                self._slot_waiters.append(waiter)
                try:
                    remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
                    await asyncio.wait_for(waiter, remaining)
                finally:
                    if waiter in self._slot_waiters:
                        self._slot_waiters.remove(waiter)
        except asyncio.TimeoutError:
            self._wake_next()  # a wake-up this waiter may have consumed goes to the next one
            raise self._reject(
                coro,
                TaskLimitError(f"no free slot in TaskTracker {self.name!r} within {timeout} s"),
            ) from None
        except BaseException:
            self._wake_next()
            self._reject(coro, RuntimeError("cancelled"))
            raise
        return self.spawn(coro, name=name)

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            self.cancelled_total += 1
        else:
            exc = task.exception()  # retrieving it silences "exception was never retrieved"
            if exc is not None:
                self.failed_total += 1
                self._log.error(
                    "memscope: task %r of TaskTracker %r failed",
                    task.get_name(),
                    self.name,
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
                if self.on_error is not None:
                    try:
                        self.on_error(task, exc)
                    except Exception:  # a broken callback must not break the loop
                        self._log.exception("memscope: TaskTracker %r on_error failed", self.name)
        self._wake_next()

    def _wake_next(self) -> None:
        if self.full:
            return
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def check_growth(self) -> bool:
        """Record the live count (at most once per growth_interval); True when it only grew."""
        now = self._clock()
        if self._last_growth_check is not None and now - self._last_growth_check < (
            self.growth_interval
        ):
            return False
        self._last_growth_check = now
        self._growth.append(len(self._tasks))
        if len(self._growth) < self.growth_window:
            return False
        counts = list(self._growth)
        if all(b > a for a, b in itertools.pairwise(counts)):
            self.growth_warnings_total += 1
            self._log.warning(
                "memscope: TaskTracker %r: live tasks only grew over the last %d checks "
                "(%d -> %d); tasks are spawned faster than they finish",
                self.name,
                len(counts),
                counts[0],
                counts[-1],
            )
            self._growth.clear()  # warn again only after another full window of growth
            return True
        return False

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until no task runs (tasks spawned meanwhile too); False on timeout."""
        import asyncio

        check_number("timeout", timeout, low=0.0, optional=True, unit="seconds")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def close(self, timeout: float = 5.0) -> int:
        """Refuse new tasks, cancel the running ones and await them; returns how many hung."""
        import asyncio

        check_number("timeout", timeout, low=0.0, unit="seconds")
        self._closed = True
        for waiter in self._slot_waiters:
            if not waiter.done():
                waiter.set_result(None)  # they wake, see the tracker closed, and give up
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
        else:
            still = set()
        if still:
            self._log.warning(
                "memscope: TaskTracker %r: %d task(s) ignored cancellation for %.1f s: %s",
                self.name,
                len(still),
                timeout,
                ", ".join(sorted(t.get_name() for t in still)[:10]),
            )
        return len(still)

    async def __aenter__(self) -> TaskTracker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def memscope_stats(self) -> dict[str, Any]:
        """Statistics shown in memscope snapshots."""
        return {
            "live": len(self._tasks),
            "peak": self.peak,
            "limit": self.limit,
            "spawned_total": self.spawned_total,
            "failed_total": self.failed_total,
            "cancelled_total": self.cancelled_total,
            "rejected_total": self.rejected_total,
            "growth_warnings_total": self.growth_warnings_total,
            "closed": self._closed,
        }
