"""What the metrics say, read from memscope's sources: cheap (no heap scan) and contained.

Both front ends of this package (the custom collector and the multiprocess publisher)
read through :class:`Readings`; each part (accounting, allocator, gc, tracked objects,
tasks, tracemalloc, monitor) is read on its own, so one that fails costs its own
samples and a count in ``memscope_scrape_errors_total{part}``, never the scrape.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ..._base import tracking
from ..._base.aio import live_tasks
from ..._base.collector import CollectorUnavailable
from ..._base.libc import mallinfo2
from ..._base.validate import check_bool, check_int
from ...collectors.accounting import ANON_PARTS, AccountingCollector
from ...collectors.tracked import TrackedCollector
from ...monitor import Monitor
from ...monitor._trends import fit
from ._families import FAMILIES, GC_COUNT_FAMILIES
from ._gcpause import PauseHistogram, install
from ._labels import LabelBudget

__all__ = ["Readings", "Samples"]

log = logging.getLogger("memscope.prometheus")

# family name -> [(label values, value)]
Row = tuple[tuple[str, ...], float]
Samples = dict[str, list[Row]]

_EVICTION_REASONS = ("size", "bytes", "ttl")


def _short_type(row: dict[str, Any]) -> str:
    return str(row.get("type", "")).rsplit(".", 1)[-1]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _fold(samples: list[tuple[tuple[str, ...], float]]) -> list[tuple[tuple[str, ...], float]]:
    """Samples with equal label values summed (names folded into "other" meet there)."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in samples:
        out[labels] = out.get(labels, 0.0) + value
    return list(out.items())


_all: weakref.WeakSet[Readings] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for readings in list(_all):
        readings.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Readings:
    """Reads every metric family once per call to :meth:`gather`; thread-safe.

    ``max_names`` bounds the distinct names of each labelled family (tracked objects,
    caches, SSE buffers); ``sticky`` keeps a name's slot for the process's life (the
    multiprocess files keep every label value they ever saw).
    """

    def __init__(
        self,
        monitor: Monitor | None = None,
        *,
        gc_counts: bool = False,
        max_names: int = 50,
        sticky: bool = False,
    ) -> None:
        if monitor is not None and not isinstance(monitor, Monitor):
            raise TypeError(
                f"monitor must be a memscope.Monitor or None, got {type(monitor).__name__}"
            )
        self.monitor = monitor
        self.gc_counts = check_bool("gc_counts", gc_counts)
        self.max_names = check_int("max_names", max_names, low=1, high=10_000)
        self._budgets = {
            kind: LabelBudget(self.max_names, sticky=sticky) for kind in ("name", "cache", "buffer")
        }
        self._accounting = AccountingCollector()
        self._tracked = TrackedCollector(max_rows=tracking.MAX_ENTRIES)
        self._errors: dict[str, int] = {}
        self._errors_lock = threading.Lock()  # also guards the cached RSS growth
        self._growth_key: tuple[int, float | None] | None = None
        self._growth: tuple[float, bool] | None = None
        self.pauses: PauseHistogram = install()
        _all.add(self)
        self._parts: tuple[tuple[str, Callable[[Samples], None]], ...] = (
            ("accounting", self._read_accounting),
            ("allocator", self._read_allocator),
            ("gc", self._read_gc),
            ("tracked", self._read_tracked),
            ("tasks", self._read_tasks),
            ("tracemalloc", self._read_tracemalloc),
            ("monitor", self._read_monitor),
        )

    def reset_after_fork(self) -> None:
        """Fresh locks in a forked child: a scrape in another thread may have held them."""
        self._errors_lock = threading.Lock()
        for budget in self._budgets.values():
            budget.reset_after_fork()

    def families(self) -> list[str]:
        """The families this reader exports (gc counts with ``gc_counts``, monitor's with one)."""
        return [
            n
            for n in FAMILIES
            if (self.gc_counts or n not in GC_COUNT_FAMILIES)
            and (self.monitor is not None or not n.startswith("memscope_monitor_"))
        ]

    def gather(self) -> Samples:
        """Samples of every family but the pause histogram (read it from ``pauses``)."""
        out: Samples = {n: [] for n in self.families() if FAMILIES[n].kind != "histogram"}
        for part, read in self._parts:
            local: Samples = {}
            try:
                read(local)
            except Exception as exc:  # contained: this part's samples only
                with self._errors_lock:
                    self._errors[part] = self._errors.get(part, 0) + 1
                    first = self._errors[part] == 1
                if first:
                    log.warning("memscope metrics: reading %s failed: %r", part, exc)
                continue
            for name, samples in local.items():
                if name in out:
                    out[name].extend(samples)
        with self._errors_lock:
            out["memscope_scrape_errors"] = [((p,), float(n)) for p, n in self._errors.items()]
        return {name: _fold(samples) for name, samples in out.items()}

    # -- the parts ------------------------------------------------------------------------

    def _read_accounting(self, out: Samples) -> None:
        try:
            data = self._accounting.collect()
        except CollectorUnavailable:
            return  # not Linux: nothing to split, and nothing wrong
        out["memscope_rss_part_bytes"] = [
            ((part,), float(data[f"{part}_bytes"])) for part in ("anon", "file", "shmem")
        ]
        out["memscope_anon_part_bytes"] = [
            ((key[: -len("_bytes")],), float(data[key]))
            for key in ANON_PARTS
            if _number(data.get(key)) is not None
        ]
        for family, key in (
            ("memscope_malloc_mmap_bytes", "malloc_mmap_bytes"),
            ("memscope_pymalloc_arenas", "python_arenas"),
            ("memscope_pymalloc_used_bytes", "python_arena_used_bytes"),
            ("memscope_pymalloc_free_bytes", "python_arena_free_bytes"),
        ):
            value = _number(data.get(key))
            if value is not None:
                out[family] = [((), value)]

    def _read_allocator(self, out: Samples) -> None:
        info = mallinfo2()
        if info is not None:
            out["memscope_malloc_trimmable_bytes"] = [((), float(info["keepcost"]))]
        # not sys.getallocatedblocks(): on 3.11 it visits every arena (1.7 ms at a million
        # objects), and a scrape must not cost more on a bigger heap

    def _read_gc(self, out: Samples) -> None:
        if not self.gc_counts:
            return
        stats = gc.get_stats()
        for family, key in (
            ("memscope_gc_collections", "collections"),
            ("memscope_gc_collected_objects", "collected"),
            ("memscope_gc_uncollectable_objects", "uncollectable"),
        ):
            out[family] = [((str(g),), float(s.get(key, 0))) for g, s in enumerate(stats)]

    def _read_tracked(self, out: Samples) -> None:
        section = self._tracked.collect()
        rows = [r for r in section.get("objects", ()) if isinstance(r, dict)]
        out["memscope_tracked_objects"] = [((), float(section.get("count", len(rows))))]
        labels = self._budgets["name"].assign(
            (str(r["name"]), float(r.get("size_bytes") or 0)) for r in rows
        )
        sizes: list[Row] = []
        lengths: list[Row] = []
        for row in rows:
            label = (labels[str(row["name"])],)
            size = _number(row.get("size_bytes"))
            if size is not None:
                sizes.append((label, size))
            length = _number(row.get("len"))
            if length is not None:
                lengths.append((label, length))
        out["memscope_tracked_size_bytes"] = sizes
        out["memscope_tracked_length"] = lengths
        self._read_guards(rows, out)

    def _read_guards(self, rows: list[dict[str, Any]], out: Samples) -> None:
        caches = [r for r in rows if _short_type(r) == "BoundedCache"]
        names = self._budgets["cache"].assign(
            (str(r["name"]), float((r.get("stats") or {}).get("hits") or 0)) for r in caches
        )
        hits: list[Row] = []
        misses: list[Row] = []
        evictions: list[Row] = []
        for row in caches:
            stats = row.get("stats") or {}
            cache = names[str(row["name"])]
            hits.append(((cache,), _number(stats.get("hits")) or 0.0))
            misses.append(((cache,), _number(stats.get("misses")) or 0.0))
            for reason in _EVICTION_REASONS:
                value = _number(stats.get(f"evictions_{reason}")) or 0.0
                evictions.append(((cache, reason), value))
        out["memscope_cache_hits"] = hits
        out["memscope_cache_misses"] = misses
        out["memscope_cache_evictions"] = evictions
        buffers = [r for r in rows if _short_type(r) == "SSEBuffer"]
        names = self._budgets["buffer"].assign(
            (str(r["name"]), float((r.get("stats") or {}).get("overflows_total") or 0))
            for r in buffers
        )
        out["memscope_sse_overflows"] = [
            (
                (names[str(r["name"])],),
                _number((r.get("stats") or {}).get("overflows_total")) or 0.0,
            )
            for r in buffers
        ]

    def _read_tasks(self, out: Samples) -> None:
        tasks = live_tasks()
        done = sum(1 for t in tasks if t.done())
        out["memscope_asyncio_tasks"] = [
            (("pending",), float(len(tasks) - done)),
            (("done",), float(done)),
        ]

    def _read_tracemalloc(self, out: Samples) -> None:
        import _tracemalloc  # the C half: no module imports, unlike tracemalloc.py

        if _tracemalloc.is_tracing():
            traced, peak = _tracemalloc.get_traced_memory()
            out["memscope_tracemalloc_traced_bytes"] = [((), float(traced))]
            out["memscope_tracemalloc_peak_bytes"] = [((), float(peak))]

    def _read_monitor(self, out: Samples) -> None:
        monitor = self.monitor
        if monitor is None:
            return
        stats = monitor.memscope_stats()
        for family, key in (
            ("memscope_monitor_snapshots", "taken"),
            ("memscope_monitor_alerts", "alerts_total"),
            ("memscope_monitor_errors", "errors_total"),
        ):
            value = _number(stats.get(key))
            if value is not None:
                out[family] = [((), value)]
        growth = self._rss_growth(monitor)
        if growth is not None:
            out["memscope_monitor_rss_growth_bytes_per_hour"] = [((), growth[0])]
            out["memscope_monitor_rss_growth_steady"] = [((), 1.0 if growth[1] else 0.0)]

    def _rss_growth(self, monitor: Monitor) -> tuple[float, bool] | None:
        """(RSS bytes per hour, steady) over the kept history: the RSS series alone is fitted
        (monitor.trends() fits every series, tens of ms on a long history), once a snapshot."""
        snaps = monitor.snapshots()
        key = (len(snaps), snaps[-1].timestamp if snaps else None)
        with self._errors_lock:
            if key == self._growth_key:
                return self._growth
        times: list[float] = []
        rss: list[float] = []
        for snap in snaps:
            process = snap.sections.get("process")
            value = _number(process.get("rss_bytes")) if process is not None else None
            if value is not None:
                times.append(snap.timestamp)
                rss.append(value)
        growth = None
        if len(rss) >= 2:
            line = fit(times, rss)
            growth = (line.slope * 3600.0, line.steady)
        with self._errors_lock:
            self._growth_key, self._growth = key, growth
        return growth
