"""Monitor: snapshots on a schedule in a background thread, a bounded history, a JSONL record,
thresholds that raise alerts, and trends of the kept history."""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._base.loop import BackgroundLoop
from .._base.tracking import track
from .._base.validate import check_callable, check_int, check_number, check_str
from .._diff import Diff, compare
from .._registry import select
from .._snapshot import Snapshot, save, snapshot
from ._alerts import Alert, Crossing, parse_thresholds, read_metric
from ._trends import Trend, trends_of

log = logging.getLogger("memscope.monitor")

ALERTS_KEPT = 100  # monitor.alerts keeps the last this many


class Monitor:
    """Snapshots every ``interval`` seconds in a daemon thread; keeps the last ``history``.

    ``record`` appends every snapshot to a JSON Lines file (readable while it grows with
    ``memscope.load``). ``deep_every=N`` makes every Nth snapshot a deep one.
    ``thresholds`` maps metric names (``rss_bytes``, ``gc_collections_per_minute``,
    ``gc_pause_seconds_max``, ``objects_total``, ``tasks``, ``tracked:<name>``) to limits;
    a crossing is an :class:`Alert`, logged, kept in :attr:`alerts` (the last 100) and
    passed to ``on_alert``. Thread-safe; nothing starts until :meth:`start`.
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
        thresholds: Mapping[str, int | float | str] | None = None,
        on_alert: Callable[[Alert], object] | None = None,
    ) -> None:
        self.interval = check_number("interval", interval, low=0.0, low_open=True, unit="seconds")
        check_int("history", history, low=1)
        self.deep_every = check_int("deep_every", deep_every, low=0)  # 0: never
        if record is not None and not isinstance(record, (str, os.PathLike)):
            raise TypeError(f"record must be a path or None, got {type(record).__name__}")
        self.on_snapshot = check_callable("on_snapshot", on_snapshot, optional=True)
        self.on_alert = check_callable("on_alert", on_alert, optional=True)
        self.thresholds = parse_thresholds(thresholds)
        self._crossings = {metric: Crossing(limit) for metric, limit in self.thresholds.items()}
        self.alerts: collections.deque[Alert] = collections.deque(maxlen=ALERTS_KEPT)
        self._alert_lock = threading.Lock()
        self._previous: Snapshot | None = None
        self._alerts_total = 0
        self.label = check_str("label", label)
        self.record = record
        self.collectors = None if collectors is None else list(collectors)
        if self.collectors is not None:
            select(self.collectors, deep=False, tracing=False)  # unknown names fail here, not later
        self._history: collections.deque[Snapshot] = collections.deque(maxlen=history)
        self._lock = threading.Lock()
        self._taken = 0
        self._hook_errors = 0
        self.record_errors_total = 0
        # snapshots start ``interval`` apart; the loop logs and counts a failed one
        self._loop = BackgroundLoop(
            self.take,
            interval=self.interval,
            name=f"memscope-monitor-{label}",
            logger=log,
            fixed_rate=True,
            after_fork=self._reset_after_fork,
        )
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
        return self._loop.running

    @property
    def errors_total(self) -> int:
        """Snapshots and on_snapshot calls that failed (each logged, none stopped the loop)."""
        return self._hook_errors + self._loop.errors_total

    def _reset_after_fork(self) -> None:
        # in a forked child the thread is gone and a lock it held would stay held
        self._lock = threading.Lock()
        self._alert_lock = threading.Lock()

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
                self._hook_errors += 1
                log.exception("memscope monitor: on_snapshot failed")
        if self._crossings:
            self._check(snap)
        return snap

    def _check(self, snap: Snapshot) -> None:
        # one snapshot at a time through the crossing states, so a take() from another
        # thread and the loop never fire the same crossing twice
        fired: list[Alert] = []
        with self._alert_lock:
            previous, self._previous = self._previous, snap
            for metric, crossing in self._crossings.items():
                value = read_metric(metric, snap, previous)
                if crossing.update(value):
                    assert value is not None  # update() fires on a reading only
                    fired.append(
                        Alert(metric, value, crossing.threshold, snap.label, snap.timestamp)
                    )
        for alert in fired:
            self._alerts_total += 1
            self.alerts.append(alert)
            log.warning("%s", alert)
            if self.on_alert is not None:
                try:
                    self.on_alert(alert)
                except Exception:
                    self._hook_errors += 1
                    log.exception("memscope monitor: on_alert failed")

    def trends(self, seconds: float | None = None, *, top: int | None = 20) -> list[Trend]:
        """Growth of RSS, census types and modules, tracked objects, tasks, threads; largest first.

        Each series of the kept history (the last ``seconds`` of it) gets a least-squares
        line; ``steady`` says whether it passes the rule of docs/monitor.md. ``top`` bounds
        the list (None: every growing series).
        """
        check_number("seconds", seconds, low=0.0, low_open=True, optional=True, unit="seconds")
        check_int("top", top, low=1, optional=True)
        return trends_of(self.snapshots(), seconds=seconds, top=top)

    def growth(self, seconds: float | None = None) -> Diff | None:
        """compare() of the oldest kept snapshot (within ``seconds`` if given) and the latest."""
        snaps = self.snapshots()
        if len(snaps) < 2:
            return None
        latest = snaps[-1]
        first = snaps[0]
        if seconds is not None:
            check_number("seconds", seconds, low=0.0, low_open=True)
            first = next(s for s in snaps if latest.timestamp - s.timestamp <= seconds)
            if first is latest:
                return None
        return compare(first, latest)

    def start(self) -> Monitor:
        """Start the background thread (a second call while running does nothing)."""
        self._loop.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the thread; returns whether it ended within ``timeout``."""
        check_number("timeout", timeout, low=0.0, unit="seconds")
        return self._loop.stop(timeout)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<Monitor {self.label!r} interval={self.interval} kept={len(self._history)}/"
            f"{self.history} running={self.running}>"
        )

    def memscope_stats(self) -> dict[str, Any]:
        """Counters for the tracked section."""
        return {
            "alerts_total": self._alerts_total,
            "taken": self._taken,
            "kept": len(self._history),
            "errors_total": self.errors_total,
            "record_errors_total": self.record_errors_total,
        }
