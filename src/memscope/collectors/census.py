"""The ``census`` collector: count and shallow size of every live object, by type and by module."""

from __future__ import annotations

from typing import Any, ClassVar

from .._base.collector import HeapRequest
from .._base.section import Section
from .._base.units import format_bytes, type_name
from .._base.validate import check_bool, check_int
from ._heap import count_types, get_scan

__all__ = ["CensusCollector", "CensusSection", "count_types"]


def _module_of(tp: type) -> str:
    # group by top-level package: which package's types hold the memory
    module = getattr(tp, "__module__", None)
    return (module if isinstance(module, str) and module else "?").split(".", 1)[0]


class CensusSection(Section):
    """Counts and sizes by type and by top-level module, and what the count covered."""

    name = "census"
    # how long the scan took is not a change in memory
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"seconds"}
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "by_type": ("type", ("count", "size_bytes")),
        "by_module": ("module", ("count", "size_bytes")),
    }

    def rank_weight(self, key: str) -> float:
        """Types lead; module totals and the grand total repeat them, so they rank lower."""
        if key.startswith("by_type["):
            return 1.0
        if key.startswith("by_module["):
            return 0.3
        return 0.2 if key in ("size_bytes_total", "objects_total") else 0.1

    def summary_lines(self, top: int = 10) -> list[str]:
        """Totals, then the largest types."""
        lines = [
            f"{self['objects_total']:,} objects, {format_bytes(self['size_bytes_total'])} shallow "
            f"({self['coverage']}; {self['gc_tracked_objects']:,} gc-tracked + "
            f"{self['untracked_objects']:,} untracked) in {self['seconds']:.2f} s"
        ]
        for row in self["by_type"][:top]:
            lines.append(
                f"{format_bytes(row['size_bytes']):>11}  {row['count']:>10,}  {row['type']}"
            )
        return lines


class CensusCollector:
    """Complete census of live objects: gc-tracked ones and the untracked ones they reach."""

    name = "census"
    cost = "scan"
    section_type = CensusSection

    def __init__(self, top: int = 100, complete: bool = True) -> None:
        self.top = check_int("top", top, low=1)
        self.complete = check_bool("complete", complete)

    def heap_request(self) -> HeapRequest:
        """What this collector needs from the shared heap walk: only the tallies."""
        return HeapRequest(complete=self.complete, where=False)

    def collect(self) -> dict[str, Any]:
        """Walk the heap (or reuse this snapshot's walk) and tabulate it."""
        scan = get_scan(self.heap_request())
        rows = []
        modules: dict[str, list[int]] = {}
        total_count = 0
        total_size = 0
        for tp, (count, size) in scan.tally.items():
            total_count += count
            total_size += size
            rows.append((size, count, tp))
            acc = modules.setdefault(_module_of(tp), [0, 0])
            acc[0] += count
            acc[1] += size
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        by_type = [
            {"type": type_name(tp), "count": count, "size_bytes": size}
            for size, count, tp in rows[: self.top]
        ]
        by_module = [
            {"module": mod, "count": c, "size_bytes": s}
            for mod, (c, s) in sorted(modules.items(), key=lambda kv: kv[1][1], reverse=True)[
                : self.top
            ]
        ]
        coverage = (
            "complete: gc-tracked objects and the untracked objects reachable from them "
            "(not those held only by local variables of running functions)"
            if scan.complete
            else "gc-tracked objects only (no str, int, bytes, untracked tuples or dicts)"
        )
        if scan.frozen:
            coverage += (
                f"; NOT the {scan.frozen:,} objects frozen by gc.freeze() nor what only they "
                "reach (gc.unfreeze() before a census counts them)"
            )
        return {
            "coverage": coverage,
            "complete": scan.complete and not scan.frozen,
            "frozen_objects": scan.frozen,
            "sizeof_errors": scan.sizeof_errors,
            "objects_total": total_count,
            "size_bytes_total": total_size,
            "gc_tracked_objects": scan.gc_tracked,
            "untracked_objects": scan.untracked,
            "types_total": len(rows),
            "seconds": scan.seconds,
            "by_type": by_type,
            "by_module": by_module,
        }
