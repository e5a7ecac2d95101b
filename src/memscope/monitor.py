"""Monitor: snapshots on a schedule in a background thread, a bounded history, a JSONL record."""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ._diff import Diff, compare
from ._snapshot import Snapshot, save, snapshot

log = logging.getLogger("memscope.monitor")

_live: weakref.WeakSet[Monitor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # threads do not survive fork: a child's monitors are stopped, their history kept
    for monitor in list(_live):
        monitor._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Monitor:
    """Snapshots every ``interval`` seconds in a daemon thread; keeps the last ``history``.

    ``record`` appends every snapshot to a JSON Lines file (readable while it grows with
    ``memscope.load``). ``deep_every=N`` makes every Nth snapshot a deep one. Thread-safe;
    nothing starts until :meth:`start`.
    """

    def __init__(
        self,
        interval: float = 5.0,
        history: int = 720,
        record: str | os.PathLike[str] | None = None,
        *,
        deep_every: int = 0,
        collectors: Iterable[str] | None = None,
        label: str = "monitor",
        on_snapshot: Callable[[Snapshot], object] | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be an int >= 1, got {history!r}")
        if isinstance(deep_every, bool) or not isinstance(deep_every, int) or deep_every < 0:
            raise ValueError(f"deep_every must be an int >= 0 (0: never), got {deep_every!r}")
        if record is not None and not isinstance(record, (str, os.PathLike)):
            raise TypeError(f"record must be a path or None, got {type(record).__name__}")
        if on_snapshot is not None and not callable(on_snapshot):
            raise TypeError("on_snapshot must be callable or None")
        self.interval = float(interval)
        self.record = record
        self.deep_every = deep_every
        self.collectors = None if collectors is None else list(collectors)
        if self.collectors is not None:
            from ._registry import select

            select(self.collectors, deep=False, tracing=False)  # unknown names fail here, not later
        self.label = label
        self.on_snapshot = on_snapshot
        self._history: collections.deque[Snapshot] = collections.deque(maxlen=history)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._taken = 0
        self.errors_total = 0
        self.record_errors_total = 0
        _live.add(self)
        from ._base.tracking import track

        track(self, name=f"monitor.{label}")

    def __len__(self) -> int:
        return len(self._history)

    @property
    def history(self) -> int:
        """How many snapshots are kept (older ones are dropped)."""
        return self._history.maxlen or 0

    @property
    def running(self) -> bool:
        """Whether the background thread is alive and not asked to stop."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._wake.is_set()

    @property
    def latest(self) -> Snapshot | None:
        """The most recent snapshot, or None before the first."""
        with self._lock:
            return self._history[-1] if self._history else None

    def snapshots(self) -> list[Snapshot]:
        """The kept snapshots, oldest first."""
        with self._lock:
            return list(self._history)

    def take(self) -> Snapshot:
        """Take one snapshot now; it is kept, recorded and passed on like scheduled ones."""
        with self._lock:
            self._taken += 1
            n = self._taken
        deep = self.deep_every > 0 and n % self.deep_every == 0
        snap = snapshot(label=f"{self.label} #{n}", deep=deep, collectors=self.collectors)
        with self._lock:
            self._history.append(snap)
        if self.record is not None:
            try:
                save(snap, self.record)
            except OSError as exc:  # a full disk must not stop the monitor
                self.record_errors_total += 1
                if self.record_errors_total == 1:
                    log.warning("memscope monitor: cannot append to %s: %s", self.record, exc)
        if self.on_snapshot is not None:
            try:
                self.on_snapshot(snap)
            except Exception:
                self.errors_total += 1
                log.exception("memscope monitor: on_snapshot failed")
        return snap

    def growth(self, seconds: float | None = None) -> Diff | None:
        """compare() of the oldest kept snapshot (within ``seconds`` if given) and the latest."""
        snaps = self.snapshots()
        if len(snaps) < 2:
            return None
        latest = snaps[-1]
        first = snaps[0]
        if seconds is not None:
            if seconds <= 0:
                raise ValueError(f"seconds must be > 0, got {seconds!r}")
            first = next(s for s in snaps if latest.timestamp - s.timestamp <= seconds)
            if first is latest:
                return None
        return compare(first, latest)

    def start(self) -> Monitor:
        """Start the background thread (a second call while running does nothing)."""
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive() and not self._wake.is_set():
                return self
            # each thread gets its own stop event: a thread still finishing after a
            # stop() that timed out must not take the new thread's event with it
            self._wake = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._wake,),
                name=f"memscope-monitor-{self.label}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the thread; returns whether it ended within ``timeout``."""
        with self._lock:
            thread = self._thread
            self._wake.set()
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

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<Monitor {self.label!r} interval={self.interval} kept={len(self._history)}/"
            f"{self.history} running={self.running}>"
        )

    def _run(self, wake: threading.Event) -> None:
        while not wake.is_set():
            started = time.monotonic()
            try:
                self.take()
            except Exception:  # never let the thread die on a bad snapshot
                self.errors_total += 1
                log.exception("memscope monitor: snapshot failed")
            wait = self.interval - (time.monotonic() - started)
            wake.wait(max(wait, 0.0))

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def memscope_stats(self) -> dict[str, Any]:
        """Counters for the tracked section."""
        return {
            "taken": self._taken,
            "kept": len(self._history),
            "errors_total": self.errors_total,
            "record_errors_total": self.record_errors_total,
        }
