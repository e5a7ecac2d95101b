"""The ``tracemalloc`` collector: traced memory and the top allocation sites by line.

Only aggregated statistics are kept (site, size, count and one representative
traceback per site); the raw traces of the tracemalloc snapshot are dropped as soon
as they are summed. memscope's own frames, tracemalloc's and the import machinery's
are filtered out so the sites shown are the application's.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import Any, ClassVar

from .._base.collector import CollectorUnavailable
from .._base.section import Section
from .._base.units import format_bytes
from .._base.validate import check_int

MAX_FRAMES = 65535  # tracemalloc's own upper bound on the traceback limit
MAX_TOP = 1000

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_tracing(frames: int = 1) -> None:
    """Start tracemalloc keeping ``frames`` frames per allocation.

    If tracing is already on with fewer frames, it is restarted with ``frames`` (which
    forgets the allocations traced so far); with as many or more frames it is left alone.
    """
    check_int("frames", frames, low=1, high=MAX_FRAMES)
    if tracemalloc.is_tracing():
        if tracemalloc.get_traceback_limit() >= frames:
            return
        tracemalloc.stop()
    tracemalloc.start(frames)


def stop_tracing() -> None:
    """Stop tracemalloc and free its traces (a no-op when it is not tracing)."""
    if tracemalloc.is_tracing():
        tracemalloc.stop()


def _filters() -> list[tracemalloc.Filter]:
    # only the most recent frame is checked (all_frames=False): user code that memscope
    # calls (assert_no_growth(fn)) has memscope further up its stack and must stay visible
    return [
        tracemalloc.Filter(False, os.path.join(_PACKAGE_DIR, "*")),
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]


def _shorten(filename: str) -> str:
    """A path relative to the sys.path entry or cwd that contains it, for humans."""
    import sys

    best = filename
    for base in [os.getcwd(), *sys.path]:
        if base and filename.startswith(base.rstrip(os.sep) + os.sep):
            candidate = filename[len(base.rstrip(os.sep)) + 1 :]
            if len(candidate) < len(best):
                best = candidate
    return best


class TracemallocSection(Section):
    """Traced memory totals and the top allocation sites, which diff row by row by site."""

    name = "tracemalloc"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "top": ("site", ("size_bytes", "count")),
    }
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"frames"}

    def summary_lines(self, top: int = 10) -> list[str]:
        """Traced current/peak/overhead, then the largest sites (short paths)."""
        lines = [
            f"traced {format_bytes(self.get('current_bytes', 0))} "
            f"(peak {format_bytes(self.get('peak_bytes', 0))}, "
            f"tracemalloc overhead {format_bytes(self.get('overhead_bytes', 0))}), "
            f"{self.get('frames')} frame(s), {self.get('sites', 0):,} sites"
        ]
        for row in (self.get("top") or [])[: max(0, min(top, 5))]:
            filename, _, line = str(row.get("site", "")).rpartition(":")
            lines.append(
                f"{format_bytes(row.get('size_bytes', 0)):>10} in {row.get('count', 0):>8,} "
                f"blocks  {_shorten(filename)}:{line}"
            )
        return lines


class TracemallocCollector:
    """Totals and top allocation sites from tracemalloc; runs when tracing is on.

    ``top`` bounds the sites kept (1..1000). Thread-safe. Cost: a tracemalloc snapshot,
    proportional to the number of live traced blocks.
    """

    name = "tracemalloc"
    cost = "trace"
    section_type = TracemallocSection

    def __init__(self, top: int = 25) -> None:
        self.top = check_int("top", top, low=1, high=MAX_TOP)

    def collect(self) -> dict[str, Any]:
        """Traced totals and the top ``top`` allocation sites by size."""
        if not tracemalloc.is_tracing():
            raise CollectorUnavailable("tracemalloc is not tracing; call memscope.start_tracing()")
        frames = tracemalloc.get_traceback_limit()
        snap = tracemalloc.take_snapshot().filter_traces(_filters())
        current, peak = tracemalloc.get_traced_memory()
        overhead = tracemalloc.get_tracemalloc_memory()
        # one pass grouped by full traceback; sites are summed from those groups and keep the
        # largest group's traceback as their representative
        by_site: dict[tuple[str, int], list[Any]] = {}
        blocks = 0
        for stat in snap.statistics("traceback"):
            tb = stat.traceback
            if not len(tb):
                continue
            recent = tb[-1]  # frames run oldest to most recent
            key = (recent.filename, recent.lineno)
            blocks += stat.count
            entry = by_site.get(key)
            if entry is None:
                by_site[key] = [stat.size, stat.count, tb, stat.size]
            else:
                entry[0] += stat.size
                entry[1] += stat.count
                if stat.size > entry[3]:
                    entry[2] = tb
                    entry[3] = stat.size
        del snap  # the raw traces go now, not at the caller's leisure
        ranked = sorted(by_site.items(), key=lambda item: item[1][0], reverse=True)
        rows: list[dict[str, Any]] = []
        for (filename, lineno), (size, count, tb, _) in ranked[: self.top]:
            row: dict[str, Any] = {
                "site": f"{filename}:{lineno}",
                "size_bytes": int(size),
                "count": int(count),
            }
            if frames > 1:
                # oldest call first, like a Python traceback ("most recent call last")
                row["traceback"] = [f"{f.filename}:{f.lineno}" for f in list(tb)[-frames:]]
            rows.append(row)
        return {
            "tracing": True,
            "frames": frames,
            "current_bytes": int(current),
            "peak_bytes": int(peak),
            "overhead_bytes": int(overhead),
            "sites": len(by_site),
            "blocks": blocks,
            "top": rows,
        }
