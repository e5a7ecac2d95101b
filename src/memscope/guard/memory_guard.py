"""MemoryGuard: a watchdog that acts before the OOM killer does.

A background thread (or an asyncio task) reads the process's memory every
``interval`` seconds: the memory cgroup's usage when the process runs under a
cgroup limit (that is the number the OOM killer compares), its RSS otherwise.
Above ``soft_limit`` it runs its actions in order (by default ``release_memory``
then ``clear_caches``) until usage is back under; above ``hard_limit`` it calls
``on_hard_limit`` once (e.g. stop accepting work) and ``on_recovered`` once usage
is back under the hard limit's hysteresis band.

One guard per name per process: ``start()`` on a second guard with a running
guard's name returns the running one, so hot reloads and repeated startup hooks
do not stack loops. After ``fork()`` the child starts with no guard running.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Union

from .._base.cgroup import cgroup_memory, cgroup_usage_bytes, memory_capacity_bytes
from .._base.loop import BackgroundLoop
from .._base.proc import rss_bytes
from .._base.units import format_bytes, parse_limit
from .._base.validate import check_callable, check_choice, check_int, check_number, check_str
from ._checks import check_logger
from ._naming import register

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("memscope.guard")

Limit = Union[int, float, str, None]  # noqa: UP007 - a runtime alias must work on 3.10
Action = Union[str, Callable[[], object]]  # noqa: UP007
Source = Literal["auto", "rss", "cgroup"]

BUILTIN_ACTIONS = ("release_memory", "clear_caches")
DEFAULT_ACTIONS: tuple[str, ...] = ("release_memory", "clear_caches")
MAX_GUARDS = 32  # named guards running at once: each is a thread, a small bound is plenty
HISTORY = 100  # action records kept per guard


@dataclass(frozen=True)
class MemoryReading:
    """One measurement, and the limits it was compared with."""

    usage_bytes: int
    source: str  # "rss", "cgroup" or "custom"
    soft_limit_bytes: int | None
    hard_limit_bytes: int | None
    timestamp: float  # from the guard's clock


@dataclass(frozen=True)
class ActionRecord:
    """One action the guard ran, with the usage before and after it."""

    action: str
    usage_before_bytes: int
    usage_after_bytes: int
    seconds: float
    detail: str
    error: str | None = None

    @property
    def freed_bytes(self) -> int:
        """How much usage fell while the action ran (negative if it rose)."""
        return self.usage_before_bytes - self.usage_after_bytes


@dataclass(frozen=True)
class CheckResult:
    """What one check saw and did."""

    usage_bytes: int | None
    state: str  # "ok", "soft" (over the soft limit), "hard", "error" or "busy"
    actions: tuple[ActionRecord, ...] = ()
    hard_limit_entered: bool = False
    recovered: bool = False


# --- measuring ----------------------------------------------------------------------


def _cgroup() -> dict[str, Any] | None:
    try:
        return cgroup_memory()
    except Exception:  # an unreadable cgroup tree means "no cgroup", not a crash
        return None


# --- the guard ----------------------------------------------------------------------

_registry_lock = threading.Lock()
_running: weakref.WeakValueDictionary[str, MemoryGuard] = weakref.WeakValueDictionary()
_every_guard: weakref.WeakSet[MemoryGuard] = weakref.WeakSet()


def running_guards() -> dict[str, MemoryGuard]:
    """Name -> guard for every guard running in this process."""
    with _registry_lock:
        return {name: g for name, g in _running.items() if g.running}


def _after_fork_in_child() -> None:
    global _registry_lock
    # the parent's threads do not exist here, and a lock one of them held stays held
    _registry_lock = threading.Lock()
    _running.clear()
    for guard in list(_every_guard):
        guard._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _action_name(action: Action) -> str:
    if isinstance(action, str):
        return action
    name = getattr(action, "__qualname__", None) or getattr(action, "__name__", None)
    if not name:
        return type(action).__qualname__
    # "test.<locals>.drain" says less in a log line than "drain"
    return str(name).rsplit("<locals>.", 1)[-1]


class MemoryGuard:
    """Watches memory in the background and acts above a soft and a hard limit (thread-safe).

    Limits are bytes (int), a fraction in (0, 1] of the cgroup limit or, outside a
    limited cgroup, of total RAM (float), or a string ("512MiB", "80%"). ``actions``
    run in order above the soft limit (or above the hard one when there is no soft
    limit) until usage is back under it: "release_memory", "clear_caches" or
    zero-argument callables. ``usage``, ``capacity`` and ``clock`` replace the real
    sources for tests. Use ``start()``/``stop()``, ``with``, ``async with`` or
    ``lifespan`` (an ASGI lifespan context).
    """

    def __init__(
        self,
        soft_limit: Limit = None,
        hard_limit: Limit = None,
        *,
        interval: float = 5.0,
        actions: Sequence[Action] | None = None,
        on_hard_limit: Callable[[MemoryReading], object] | None = None,
        on_recovered: Callable[[MemoryReading], object] | None = None,
        hysteresis: float = 0.05,
        cooldown: float = 30.0,
        name: str | None = None,
        source: Source = "auto",
        usage: Callable[[], int] | None = None,
        capacity: int | Callable[[], int | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        check_str("name", name, optional=True)
        interval = check_number("interval", interval, low=0.001, unit="seconds")
        self.hysteresis: float = check_number("hysteresis", hysteresis, low=0.0, high=0.5)
        self.cooldown: float = check_number("cooldown", cooldown, low=0.0, unit="seconds")
        check_callable("on_hard_limit", on_hard_limit, optional=True)
        check_callable("on_recovered", on_recovered, optional=True)
        check_callable("clock", clock)
        chosen = list(DEFAULT_ACTIONS if actions is None else actions)
        if isinstance(actions, (str, bytes)):
            raise TypeError("actions must be a list of actions, not a single string")
        for i, action in enumerate(chosen):
            if isinstance(action, str):
                if action not in BUILTIN_ACTIONS:
                    raise ValueError(
                        f"actions[{i}]={action!r} is not a built-in action; accepted: "
                        f"{list(BUILTIN_ACTIONS)} or a zero-argument callable"
                    )
            elif not callable(action):
                raise TypeError(
                    f"actions[{i}] must be a built-in action name or a callable, "
                    f"got {type(action).__name__}"
                )
        check_choice("source", source, ("auto", "rss", "cgroup"))
        check_callable("usage", usage, optional=True)

        capacity_fn: Callable[[], int | None]
        if capacity is None:
            capacity_fn = memory_capacity_bytes
        elif callable(capacity):
            capacity_fn = capacity
        elif isinstance(capacity, int) and not isinstance(capacity, bool):
            fixed: int = check_int("capacity", capacity, low=1, unit="bytes")
            capacity_fn = lambda: fixed  # noqa: E731
        else:
            raise TypeError(
                "capacity must be bytes (an int), a callable or None, "
                f"got {type(capacity).__name__}"
            )

        soft = parse_limit("soft_limit", soft_limit, capacity_fn)
        hard = parse_limit("hard_limit", hard_limit, capacity_fn)
        if soft is None and hard is None:
            raise ValueError("give soft_limit, hard_limit or both (bytes, a fraction or '512MiB')")
        if soft is not None and hard is not None and soft >= hard:
            raise ValueError(
                f"soft_limit ({format_bytes(soft)}) must be below hard_limit ({format_bytes(hard)})"
            )

        # the platform readers return None when they cannot read: _measure makes that an error
        if usage is not None:
            self.source = "custom"
            self._usage: Callable[[], int | None] = usage
        else:
            info = _cgroup() if source in ("auto", "cgroup") else None
            in_limited_cgroup = info is not None and bool(info.get("limit_bytes"))
            if source == "cgroup" and (info is None or info.get("usage_bytes") is None):
                raise ValueError("source='cgroup' but this process is in no readable memory cgroup")
            if source == "cgroup" or (source == "auto" and in_limited_cgroup):
                self.source = "cgroup"
                self._usage = cgroup_usage_bytes
            else:
                self.source = "rss"
                self._usage = rss_bytes

        # the name is the key of "one guard per name per process"; unnamed guards share it
        self.name: str = name if name is not None else "default"
        self.soft_limit_bytes = soft
        self.hard_limit_bytes = hard
        self.actions: tuple[Action, ...] = tuple(chosen)
        self.on_hard_limit = on_hard_limit
        self.on_recovered = on_recovered
        self._clock = clock
        self._log = check_logger(logger) if logger is not None else log
        self._history: deque[ActionRecord] = deque(maxlen=HISTORY)
        self._reset_state()
        self._busy = threading.Lock()
        self._loop = BackgroundLoop(
            self._loop_step, interval=interval, name=f"memscope-guard-{self.name}", logger=self._log
        )
        self._task: asyncio.Task[None] | None = None
        self.checks_total = 0
        self.action_rounds_total = 0
        self.actions_total = 0
        self.action_errors_total = 0
        self.hard_limit_events_total = 0
        self.errors_total = 0
        self.last_usage_bytes: int | None = None
        self._last_error: str | None = None
        _every_guard.add(self)
        # in snapshots from construction on, running or not; unnamed, under the line that made it
        register(self, "MemoryGuard", None if name is None else f"memory_guard.{name}")

    def _reset_state(self) -> None:
        self._armed = True  # the soft limit may trigger an action round without cooldown
        self._last_round: float | None = None
        self._hard_active = False
        self._state = "ok"

    def _reset_after_fork(self) -> None:
        # the BackgroundLoop resets itself in the child; the task flavour and the lock are ours
        self._task = None
        self._busy = threading.Lock()
        self._reset_state()

    def __repr__(self) -> str:
        return (
            f"<MemoryGuard {self.name!r} source={self.source} "
            f"soft={_fmt(self.soft_limit_bytes)} hard={_fmt(self.hard_limit_bytes)} "
            f"running={self.running}>"
        )

    # --- state ------------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Seconds between checks."""
        return self._loop.interval

    @interval.setter
    def interval(self, value: float) -> None:
        self._loop.interval = check_number("interval", value, low=0.001, unit="seconds")

    @property
    def running(self) -> bool:
        """Whether this guard's thread or task is alive and not asked to stop."""
        # a thread still finishing a check after a stop() that timed out is stopping, not
        # running (BackgroundLoop.running says so): start() then starts a new one
        if self._loop.running:
            return True
        task = self._task
        return task is not None and not task.done() and not task.get_loop().is_closed()

    @property
    def state(self) -> str:
        """ "ok", "soft" or "hard": where the last reading stood."""
        return self._state

    @property
    def history(self) -> list[ActionRecord]:
        """The last actions run (at most 100), oldest first."""
        return list(self._history)

    def memscope_stats(self) -> dict[str, Any]:
        """Statistics shown in memscope snapshots."""
        return {
            "running": self.running,
            "source": self.source,
            "state": self._state,
            "usage_bytes": self.last_usage_bytes,
            "soft_limit_bytes": self.soft_limit_bytes,
            "hard_limit_bytes": self.hard_limit_bytes,
            "checks_total": self.checks_total,
            "action_rounds_total": self.action_rounds_total,
            "actions_total": self.actions_total,
            "action_errors_total": self.action_errors_total,
            "hard_limit_events_total": self.hard_limit_events_total,
            "errors_total": self.errors_total,
        }

    # --- one check ----------------------------------------------------------------

    def _reading(self, usage: int) -> MemoryReading:
        return MemoryReading(
            usage_bytes=usage,
            source=self.source,
            soft_limit_bytes=self.soft_limit_bytes,
            hard_limit_bytes=self.hard_limit_bytes,
            timestamp=self._clock(),
        )

    def _measure(self) -> int:
        value = self._usage()
        if value is None and self.source != "custom":
            what = "RSS" if self.source == "rss" else "memory cgroup usage"
            raise RuntimeError(f"this process's {what} cannot be read here")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError(f"usage() must return bytes as an int >= 0, got {value!r}")
        return value

    def _steps(self) -> Generator[tuple[str, Any], Any, CheckResult]:
        """The decision logic, free of I/O: yields what to run, receives the outcome."""
        try:
            usage = self._measure()
        except Exception as exc:
            self.errors_total += 1
            message = f"{type(exc).__name__}: {exc}"
            if message != self._last_error:  # the same failure is logged once, not each check
                self._log.error("memscope guard %r: reading memory failed: %s", self.name, message)
            self._last_error = message
            return CheckResult(usage_bytes=None, state="error")
        self._last_error = None
        self.checks_total += 1
        self.last_usage_bytes = usage
        now = self._clock()
        soft, hard = self.soft_limit_bytes, self.hard_limit_bytes
        trigger = soft if soft is not None else hard
        assert trigger is not None  # the constructor requires one of them
        records: list[ActionRecord] = []
        if not self._armed and usage < trigger * (1.0 - self.hysteresis):
            self._armed = True
            self._log.info(
                "memscope guard %r: usage %s is back under %s",
                self.name,
                format_bytes(usage),
                format_bytes(trigger),
            )
        due = self._armed or (
            self._last_round is not None and now - self._last_round >= self.cooldown
        )
        if usage >= trigger and self.actions and due:
            self._armed = False
            self._last_round = now
            self.action_rounds_total += 1
            self._log.warning(
                "memscope guard %r: %s usage %s is over the %s limit %s; running %d action(s)",
                self.name,
                self.source,
                format_bytes(usage),
                "soft" if soft is not None else "hard",
                format_bytes(trigger),
                len(self.actions),
            )
            for action in self.actions:
                before = usage
                started = time.perf_counter()
                detail, error = yield ("action", action)
                seconds = time.perf_counter() - started
                try:
                    usage = self._measure()
                except Exception:
                    usage = before
                self.last_usage_bytes = usage
                record = ActionRecord(_action_name(action), before, usage, seconds, detail, error)
                records.append(record)
                self._history.append(record)
                self.actions_total += 1
                if error is not None:
                    self.action_errors_total += 1
                self._log.warning(
                    "memscope guard %r: action %s: usage %s -> %s (%s) in %.3f s%s%s",
                    self.name,
                    record.action,
                    format_bytes(before),
                    format_bytes(usage),
                    _signed(usage - before),
                    seconds,
                    f"; {detail}" if detail else "",
                    f"; FAILED: {error}" if error else "",
                )
                if usage < trigger:
                    break
        entered = recovered = False
        if hard is not None:
            if not self._hard_active and usage >= hard:
                self._hard_active = entered = True
                self.hard_limit_events_total += 1
            elif self._hard_active and usage < hard * (1.0 - self.hysteresis):
                self._hard_active = False
                recovered = True
            if entered or recovered:
                (self._log.error if entered else self._log.warning)(
                    "memscope guard %r: usage %s is %s the hard limit %s",
                    self.name,
                    format_bytes(usage),
                    "over" if entered else "back under",
                    format_bytes(hard),
                )
                callback = self.on_hard_limit if entered else self.on_recovered
                if callback is not None:
                    yield ("callback", (callback, self._reading(usage)))
        if self._hard_active:
            self._state = "hard"
        elif soft is not None and usage >= soft:
            self._state = "soft"
        else:
            self._state = "ok"
        return CheckResult(usage, self._state, tuple(records), entered, recovered)

    def _run_action_sync(self, action: Action) -> tuple[str, str | None]:
        try:
            if action == "release_memory":
                try:
                    release = _import("memscope.guard.release")
                except ImportError as exc:
                    return "", f"unavailable: {exc}"
                return _release_detail(release.release_memory()), None
            if action == "clear_caches":
                from .._base.tracking import clear_caches

                return _cleared_detail(clear_caches()), None
            assert callable(action)
            result = action()
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if callable(close):
                    close()  # never leave an un-awaited coroutine behind
                return "", "async actions need the asyncio flavour (start_async / async with)"
            return _result_detail(result), None
        except Exception as exc:  # one failing action must not stop the others
            self._log.exception(
                "memscope guard %r: action %s failed", self.name, _action_name(action)
            )
            return "", f"{type(exc).__name__}: {exc}"

    def _callback_sync(self, fn: Callable[[MemoryReading], object], reading: MemoryReading) -> None:
        try:
            result = fn(reading)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if callable(close):
                    close()
                self._log.error(
                    "memscope guard %r: %s is async; use the asyncio flavour", self.name, fn
                )
        except Exception:
            self._log.exception("memscope guard %r: callback %r failed", self.name, fn)

    def _session(self) -> Generator[tuple[str, Any], Any, None]:
        """One check for a driver: _steps() under the busy flag, and ("done", result) last.

        A check already running makes this one "busy" at once. Drivers close the
        session (contextlib.closing), so a driver that fails mid-check frees the flag.
        """
        if not self._busy.acquire(blocking=False):
            yield ("done", CheckResult(usage_bytes=self.last_usage_bytes, state="busy"))
            return
        try:
            result = yield from self._steps()
        finally:
            self._busy.release()
        yield ("done", result)

    def check(self) -> CheckResult:
        """Measure once and act on it now (in this thread); what the loop runs each interval."""
        with contextlib.closing(self._session()) as session:
            kind, payload = next(session)
            while kind != "done":
                reply: Any = None  # what a callback step gets back
                if kind == "action":
                    reply = self._run_action_sync(payload)
                else:
                    self._callback_sync(*payload)
                kind, payload = session.send(reply)
        result: CheckResult = payload
        return result

    async def check_async(self) -> CheckResult:
        """Like check(), on the event loop: release_memory runs in a worker thread,
        async actions and callbacks are awaited."""
        import asyncio

        with contextlib.closing(self._session()) as session:
            kind, payload = next(session)
            while kind != "done":
                reply: Any = None  # what a callback step gets back
                if kind != "action":
                    await self._callback_async(*payload)
                elif payload == "release_memory":
                    # gc + malloc_trim can take a while: keep the loop responsive
                    reply = await asyncio.to_thread(self._run_action_sync, payload)
                elif isinstance(payload, str):
                    reply = self._run_action_sync(payload)
                else:
                    reply = await self._run_action_async(payload)
                kind, payload = session.send(reply)
        result: CheckResult = payload
        return result

    async def _callback_async(
        self, fn: Callable[[MemoryReading], object], reading: MemoryReading
    ) -> None:
        try:
            result = fn(reading)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception("memscope guard %r: callback %r failed", self.name, fn)

    async def _run_action_async(self, action: Callable[[], object]) -> tuple[str, str | None]:
        try:
            result = action()
            if inspect.isawaitable(result):
                result = await result
            return _result_detail(result), None
        except Exception as exc:
            self._log.exception(
                "memscope guard %r: action %s failed", self.name, _action_name(action)
            )
            return "", f"{type(exc).__name__}: {exc}"

    # --- lifecycle ------------------------------------------------------------------

    def _claim(self) -> MemoryGuard | None:
        """Register as the running guard of this name; or return the one already running."""
        existing = _running.get(self.name)
        if existing is not None and existing is not self and existing.running:
            self._log.info(
                "memscope guard %r is already running in this process; using it "
                "(its limits stay as they are)",
                self.name,
            )
            return existing
        alive = [g for g in _running.values() if g.running and g is not self]
        if len(alive) >= MAX_GUARDS:
            raise RuntimeError(
                f"{len(alive)} memory guards already run in this process (at most {MAX_GUARDS}); "
                "reuse a name or stop one"
            )
        _running[self.name] = self
        return None

    def _launch(self, launch: Callable[[], object]) -> MemoryGuard | None:
        """Run ``launch`` unless this guard, or another of its name, runs already: that
        one is returned then. Both start flavours claim the name this one way."""
        with _registry_lock:
            if self.running:
                return self
            other = self._claim()
            if other is not None:
                return other
            launch()
        return None

    def start(self) -> MemoryGuard:
        """Start the background thread; returns the guard now running under this name."""
        running = self._launch(self._loop.start)
        if running is not None:
            return running
        self._log.info(
            "memscope guard %r started: %s, soft %s, hard %s, every %.3g s",
            self.name,
            self.source,
            _fmt(self.soft_limit_bytes),
            _fmt(self.hard_limit_bytes),
            self.interval,
        )
        return self

    def _loop_step(self) -> None:
        try:
            self.check()
        except Exception:  # the watchdog must outlive any bug of its own (logged as ours)
            self._log.exception("memscope guard %r: check failed", self.name)

    async def start_async(self) -> MemoryGuard:
        """Start as a task of the running event loop; returns the guard running under this name."""
        import asyncio

        loop = asyncio.get_running_loop()

        def launch() -> None:
            self._task = loop.create_task(self._run_task(), name=f"memscope-guard-{self.name}")

        running = self._launch(launch)
        return self if running is None else running

    async def _run_task(self) -> None:
        import asyncio

        while True:
            try:
                await self.check_async()
            except Exception:
                self._log.exception("memscope guard %r: check failed", self.name)
            await asyncio.sleep(self.interval)

    def _release_name(self) -> None:
        with _registry_lock:
            if _running.get(self.name) is self:
                del _running[self.name]

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the loop and wait up to ``timeout`` s for it; True once it has stopped."""
        check_number("timeout", timeout, low=0.0, unit="seconds")
        self._release_name()
        stopped = self._loop.stop(timeout)  # True at once when no thread runs
        task = self._task
        if task is not None and not task.done():
            loop = task.get_loop()
            if loop.is_closed():
                return stopped
            loop.call_soon_threadsafe(task.cancel)
            return stopped and task.done()
        return stopped

    async def stop_async(self, timeout: float = 5.0) -> bool:
        """Stop and wait (without blocking the event loop); True once it has stopped."""
        import asyncio

        check_number("timeout", timeout, low=0.0, unit="seconds")
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            self._release_name()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
            return task.done()
        return await asyncio.to_thread(self.stop, timeout)

    def __enter__(self) -> MemoryGuard:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> MemoryGuard:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """An ASGI lifespan context: ``Starlette(lifespan=guard.lifespan)``."""
        await self.start_async()
        try:
            yield None
        finally:
            await self.stop_async()


def _import(name: str) -> Any:
    # loaded on first use so that importing memscope stays fast
    import importlib

    return importlib.import_module(name)


def _signed(delta: int) -> str:
    return ("+" if delta > 0 else "") + format_bytes(delta)


def _fmt(value: int | None) -> str:
    return "none" if value is None else format_bytes(value)


def _release_detail(report: object) -> str:
    explanation = getattr(report, "explanation", None)
    if isinstance(explanation, str) and explanation:
        return explanation[:200]
    freed = getattr(report, "freed_bytes", None)
    return f"release_memory freed {format_bytes(freed)}" if isinstance(freed, int) else ""


def _cleared_detail(cleared: dict[str, int]) -> str:
    if not cleared:
        return "no clearable tracked object"
    parts = [f"{name}={n}" for name, n in list(cleared.items())[:5]]
    more = f" and {len(cleared) - 5} more" if len(cleared) > 5 else ""
    return "cleared " + ", ".join(parts) + more


def _result_detail(result: object) -> str:
    if result is None:
        return ""
    from .summary import summarize

    return summarize(result, max_chars=120)
