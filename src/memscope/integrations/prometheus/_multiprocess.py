"""Per-worker metrics for multiprocess servers (gunicorn, uvicorn workers).

prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before it is
imported) aggregates only metrics kept in its per-process files, never custom
collectors. So each worker publishes memscope's readings into such metrics: gauges in
``multiprocess_mode="liveall"`` (one series per live worker, labelled ``pid``),
counters (summed over every worker that ever ran, as counters should be) and the GC
pause histogram (summed too). A BackgroundLoop republishes every ``interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from ..._base.loop import BackgroundLoop
from ..._base.validate import check_number
from ._families import FAMILIES
from ._gcpause import GENERATIONS
from ._readings import Readings

if TYPE_CHECKING:
    from ...monitor import Monitor

__all__ = ["MultiprocessPublisher", "current_publisher", "multiprocess_dir"]

log = logging.getLogger("memscope.prometheus")

PAUSES = "memscope_gc_pause_seconds"


def multiprocess_dir() -> str | None:
    """The multiprocess directory prometheus_client uses, or None outside multiprocess mode."""
    # prometheus_client still honours the old lower-case name
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir"  # noqa: SIM112
    )


_current_lock = threading.Lock()
_current: MultiprocessPublisher | None = None  # one a process (a forked child inherits it)


_held: MultiprocessPublisher | None = None  # the publisher whose lock a fork holds


def _before_fork() -> None:
    # no publication is half-written at a fork: the child would find this lock, or
    # prometheus_client's own (taken only inside it), held by a thread it does not have
    global _held
    _held = _current
    if _held is not None:
        _held._lock.acquire()


def _after_fork_in_parent() -> None:
    global _held
    if _held is not None:
        _held._lock.release()
        _held = None


def _after_fork_in_child() -> None:
    global _held, _current_lock
    _current_lock = threading.Lock()
    if _held is not None:
        _held._lock = threading.Lock()
        _held = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def current_publisher(
    monitor: Monitor | None = None, *, interval: float = 15.0, max_names: int = 50
) -> MultiprocessPublisher:
    """This process's publisher, made with these arguments if there is none yet."""
    with _current_lock:
        found = _current
    if found is not None:
        return found
    try:
        return MultiprocessPublisher(monitor, interval=interval, max_names=max_names)
    except RuntimeError:  # another thread made it in between
        assert _current is not None
        return _current


class MultiprocessPublisher:
    """Publishes this worker's memscope readings into multiprocess-safe metrics.

    :meth:`publish` once, or :meth:`start` a daemon thread that publishes every
    ``interval`` seconds (in each worker, after the fork: the loop does not survive one).
    The metrics belong to no registry: prometheus_client's MultiProcessCollector reads
    them from the files. Label values are sticky (at most ``max_names`` a family for the
    process's life, the rest "other") because the files keep every value they saw.
    One a process (a second raises RuntimeError: it would count every counter twice).
    A forked child counts its counters from its parent's last publication. Thread-safe.
    """

    def __init__(
        self,
        monitor: Monitor | None = None,
        *,
        interval: float = 15.0,
        max_names: int = 50,
    ) -> None:
        global _current
        self.interval = check_number("interval", interval, low=0.0, low_open=True, unit="seconds")
        with _current_lock:
            if _current is not None:
                raise RuntimeError(
                    "this process already has a MultiprocessPublisher, and two would count "
                    "every counter twice: start_multiprocess() returns the existing one"
                )
            _current = self
        # in multiprocess mode GCCollector's python_gc_* are not aggregated: publish them
        self.readings = Readings(monitor, gc_counts=True, max_names=max_names, sticky=True)
        self._metrics: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # (family, label values) -> what was published last: counters add the difference
        self._published: dict[tuple[str, tuple[str, ...]], float] = {}
        self._gauges_set: dict[str, set[tuple[str, ...]]] = {}
        self._pauses_published: tuple[list[list[int]], list[float]] | None = None
        self.publishes_total = 0
        self.write_errors_total = 0
        self._loop = BackgroundLoop(
            self._publish_from_loop,
            interval=self.interval,
            name="memscope-prometheus",
            logger=log,
            fixed_rate=True,
        )

    @property
    def running(self) -> bool:
        """Whether the publishing thread runs."""
        return self._loop.running

    def start(self) -> MultiprocessPublisher:
        """Publish now, then every ``interval`` seconds in a daemon thread."""
        self.publish()
        self._loop.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; True once it has ended."""
        return self._loop.stop(check_number("timeout", timeout, low=0.0, unit="seconds"))

    def _publish_from_loop(self) -> None:
        self.publish()

    def publish(self) -> None:
        """Read memscope's numbers and write them into this worker's metric files."""
        with self._lock:
            # read inside the lock: a reading older than the last one published would
            # look like a counter going back
            samples = self.readings.gather()
            if os.getpid() != self._pid:
                # a forked child: its files start empty, and what it inherited up to the
                # parent's last publication is the parent's to count, so the baseline stays
                self._pid = os.getpid()
                self._gauges_set.clear()
            for name, rows in samples.items():
                if not rows and name not in self._metrics:
                    continue  # a family with no source here (no monitor, not tracing) stays absent
                spec = FAMILIES[name]
                write = self._set_gauge if spec.kind == "gauge" else self._add_counter
                self._contained(name, write, name, rows)
            self._contained(PAUSES, self._add_pauses)
            self.publishes_total += 1

    def _contained(self, name: str, write: Any, *args: Any) -> None:
        try:
            write(*args)
        except Exception as exc:  # one family that cannot be written costs only itself
            self.write_errors_total += 1
            if self.write_errors_total == 1:
                log.warning("memscope metrics: publishing %s failed: %r", name, exc)

    def _metric(self, name: str) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            spec = FAMILIES[name]
            if spec.kind == "gauge":
                metric = Gauge(
                    name, spec.help, spec.labels, registry=None, multiprocess_mode="liveall"
                )
            elif spec.kind == "counter":
                metric = Counter(name, spec.help, spec.labels, registry=None)
            else:
                metric = Histogram(
                    name,
                    spec.help,
                    spec.labels,
                    registry=None,
                    buckets=(*self.readings.pauses.bounds, float("inf")),
                )
            self._metrics[name] = metric
        return metric

    def _set_gauge(self, name: str, rows: list[tuple[tuple[str, ...], float]]) -> None:
        metric = self._metric(name)
        now = {labels for labels, _ in rows}
        # a series that went away reads 0 (the file keeps its last value otherwise)
        for labels in self._gauges_set.get(name, set()) - now:
            (metric.labels(*labels) if labels else metric).set(0.0)
        for labels, value in rows:
            (metric.labels(*labels) if labels else metric).set(value)
        self._gauges_set[name] = self._gauges_set.get(name, set()) | now

    def _add_counter(self, name: str, rows: list[tuple[tuple[str, ...], float]]) -> None:
        metric = self._metric(name)
        for labels, value in rows:
            last = self._published.get((name, labels), 0.0)
            # a value that went back (a cache replaced under its name, objects leaving
            # "other") adds nothing: a counter may miss counts, never invent them
            delta = value - last
            child = metric.labels(*labels) if labels else metric  # made at 0: the series shows
            if delta > 0:
                child.inc(delta)
            self._published[(name, labels)] = value

    def _add_pauses(self) -> None:
        counts, sums = self.readings.pauses.read()
        last = self._pauses_published
        metric = self._metric(PAUSES)
        for g in range(GENERATIONS):
            child = metric.labels(str(g))
            # prometheus_client has no public call that adds a batch of observations: a
            # child keeps one value per bucket (not cumulative) and a sum, which is what
            # observe() increments; the gc callback cannot call observe() (it takes a lock)
            buckets, total = getattr(child, "_buckets", None), getattr(child, "_sum", None)
            if buckets is None or total is None or len(buckets) != len(counts[g]):
                raise RuntimeError("this prometheus_client's Histogram has no _buckets/_sum")
            for i, count in enumerate(counts[g]):
                delta = count - (last[0][g][i] if last is not None else 0)
                if delta > 0:
                    buckets[i].inc(delta)
            delta_sum = sums[g] - (last[1][g] if last is not None else 0.0)
            if delta_sum > 0:
                total.inc(delta_sum)
        self._pauses_published = (counts, sums)
