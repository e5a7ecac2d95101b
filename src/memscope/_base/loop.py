"""One background loop: a daemon thread that runs a step every ``interval`` seconds.

Used by Monitor and MemoryGuard, so start/stop/join and fork handling are written once:
each thread gets its own stop event (a thread still finishing after a stop() that timed
out never takes a new thread's event with it), a failing step is logged and the loop
goes on, and in a forked child every loop starts out stopped (threads do not survive a
fork, and a lock one of them held would stay held).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["BackgroundLoop"]

_loops: weakref.WeakSet[BackgroundLoop] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for loop in list(_loops):
        loop._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class BackgroundLoop:
    """Calls ``step()`` every ``interval`` seconds in a daemon thread until :meth:`stop`.

    ``fixed_rate=True`` starts steps ``interval`` apart (a slow step shortens the wait);
    otherwise the loop waits ``interval`` after each step. ``after_fork`` runs in a forked
    child once the loop is reset there (the owner resets its own locks). Thread-safe.
    """

    def __init__(
        self,
        step: Callable[[], object],
        *,
        interval: float,
        name: str,
        logger: logging.Logger,
        fixed_rate: bool = False,
        after_fork: Callable[[], object] | None = None,
    ) -> None:
        self._step = step
        self.interval = interval
        self.name = name
        self._log = logger
        self._fixed_rate = fixed_rate
        self._after_fork = after_fork
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors_total = 0
        _loops.add(self)

    @property
    def running(self) -> bool:
        """Whether the thread is alive and not asked to stop (a stopping thread is not running)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def start(self) -> bool:
        """Start the thread; False when it was already running."""
        with self._lock:
            if self.running:
                return False
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name=self.name, daemon=True
            )
            self._thread.start()
            return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; True once it has ended."""
        with self._lock:
            thread = self._thread
            self._stop.set()
        if thread is None:
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        ended = not thread.is_alive()
        if ended:
            with self._lock:
                if self._thread is thread:
                    self._thread = None
        return ended

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._step()
            except (Exception, SystemExit, GeneratorExit):  # the loop outlives its step's bugs
                self.errors_total += 1
                self._log.exception("memscope %s: step failed", self.name)
            wait = self.interval
            if self._fixed_rate:
                wait = max(self.interval - (time.monotonic() - started), 0.0)
            if stop.wait(wait):
                break

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self._after_fork is not None:
            try:
                self._after_fork()
            except Exception:  # a fork handler must never take the child down
                self._log.exception("memscope %s: after-fork reset failed", self.name)
