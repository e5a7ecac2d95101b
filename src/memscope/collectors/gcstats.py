"""The ``gc`` collector: generation counts, thresholds, collection statistics and GC pauses.

Pauses are timed by a callback in ``gc.callbacks``. It is installed by the first
``collect()`` (never at import) and only once per process, however many collectors
exist, so pause figures cover the time since then (``pauses_since``). Its bookkeeping
is a few numbers per generation: O(1) memory whatever the run time.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, ClassVar

from .._base.section import Section

_GENERATIONS = 3  # CPython has had three generations since gc.get_stats() exists


class _PauseClock:
    """Accumulates GC pause time per generation; fed by the gc callback."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self.clock = clock
        self.started: float | None = None
        self.generation = 0
        self.count = [0] * _GENERATIONS
        self.total = [0.0] * _GENERATIONS
        self.max = [0.0] * _GENERATIONS
        self.since: float | None = None  # wall-clock time of installation

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # runs inside every collection: must be tiny and must never raise (an exception
        # here would be reported as "unraisable" by the interpreter on every GC)
        try:
            if phase == "start":
                self.generation = min(max(int(info.get("generation", 0)), 0), _GENERATIONS - 1)
                self.started = self.clock()
            elif phase == "stop" and self.started is not None:
                elapsed = self.clock() - self.started
                self.started = None
                g = self.generation
                self.count[g] += 1
                self.total[g] += elapsed
                if elapsed > self.max[g]:
                    self.max[g] = elapsed
        except Exception:  # pragma: no cover - defensive: arithmetic on our own floats
            self.started = None


_install_lock = threading.Lock()
_pauses = _PauseClock()


def _ensure_installed() -> _PauseClock:
    """Put the pause callback in gc.callbacks if it is not there (first use, or removed)."""
    if _pauses not in gc.callbacks:
        with _install_lock:
            if _pauses not in gc.callbacks:
                gc.callbacks.append(_pauses)
                if _pauses.since is None:
                    _pauses.since = time.time()
    return _pauses


class GCSection(Section):
    """Per-generation collector state and statistics, plus pause times since ``pauses_since``."""

    name = "gc"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "generations": (
            "generation",
            (
                "count",
                "collections_total",
                "collected_total",
                "uncollectable_total",
                "pause_seconds_total",
                "pause_seconds_max",
            ),
        ),
    }
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"pauses_since", "threshold"}

    def summary_lines(self, top: int = 10) -> list[str]:
        """Collections, collected objects and pauses, overall then per generation."""
        state = "enabled" if self.get("enabled") else "DISABLED"
        lines = [
            f"gc {state}: {self.get('collections_total', 0):,} collections, "
            f"{self.get('collected_total', 0):,} objects collected, "
            f"{self.get('uncollectable_total', 0):,} uncollectable, "
            f"{self.get('garbage', 0):,} in gc.garbage",
            f"pauses {self.get('pause_seconds_total', 0.0) * 1e3:.2f} ms total, "
            f"max {self.get('pause_seconds_max', 0.0) * 1e3:.3f} ms "
            f"({self.get('pauses_total', 0):,} timed since {_when(self.get('pauses_since'))})",
        ]
        for row in (self.get("generations") or [])[: max(0, min(top, 4))]:
            lines.append(
                f"gen{row.get('generation')}: count {row.get('count')}/{row.get('threshold')}, "
                f"{row.get('collections_total', 0):,} collections, "
                f"pauses {row.get('pause_seconds_total', 0.0) * 1e3:.2f} ms "
                f"(max {row.get('pause_seconds_max', 0.0) * 1e3:.3f} ms)"
            )
        return lines


def _when(stamp: object) -> str:
    if not isinstance(stamp, (int, float)):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(stamp))


class GCCollector:
    """Garbage collector state and statistics, with pause times measured by a gc callback.

    Thread-safe; the callback is shared by every instance and installed on first collect().
    """

    name = "gc"
    cost = "cheap"
    section_type = GCSection

    def collect(self) -> dict[str, Any]:
        """Counts, thresholds, gc.get_stats() per generation, len(gc.garbage) and pauses."""
        pauses = _ensure_installed()
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        stats = gc.get_stats()
        rows: list[dict[str, Any]] = []
        for g, stat in enumerate(stats[:_GENERATIONS]):
            rows.append(
                {
                    "generation": g,
                    "count": int(counts[g]) if g < len(counts) else 0,
                    "threshold": int(thresholds[g]) if g < len(thresholds) else 0,
                    "collections_total": int(stat.get("collections", 0)),
                    "collected_total": int(stat.get("collected", 0)),
                    "uncollectable_total": int(stat.get("uncollectable", 0)),
                    "pauses_total": pauses.count[g],
                    "pause_seconds_total": pauses.total[g],
                    "pause_seconds_max": pauses.max[g],
                }
            )
        freeze = getattr(gc, "get_freeze_count", None)
        return {
            "enabled": gc.isenabled(),
            "garbage": len(gc.garbage),
            "frozen": int(freeze()) if callable(freeze) else 0,
            "collections_total": sum(r["collections_total"] for r in rows),
            "collected_total": sum(r["collected_total"] for r in rows),
            "uncollectable_total": sum(r["uncollectable_total"] for r in rows),
            "pauses_total": sum(pauses.count),
            "pause_seconds_total": sum(pauses.total),
            "pause_seconds_max": max(pauses.max),
            "pauses_since": pauses.since,
            "generations": rows,
        }
