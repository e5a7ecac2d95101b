"""The ``large_objects`` collector: single objects over a size threshold, and where they live."""

from __future__ import annotations

from typing import Any, ClassVar

from .._base.collector import HeapRequest
from .._base.section import Section
from .._base.units import format_bytes
from .._base.validate import check_bool, check_int
from ._heap import get_scan, object_row


class LargeObjectsSection(Section):
    """Objects whose own size is over the threshold (a 50 MiB bytes, a dict of 2M slots...)."""

    name = "large_objects"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "objects": ("key", ("size_bytes",)),
    }

    def summary_lines(self, top: int = 10) -> list[str]:
        """One line per large object, largest first."""
        rows = self["objects"]
        if not rows:
            return [f"no object over {format_bytes(self['threshold_bytes'])}"]
        lines = []
        for row in rows[:top]:
            where = row.get("where") or "(holder not found cheaply)"
            lines.append(f"{format_bytes(row['size_bytes']):>10}  {row['summary']}  <- {where}")
        return lines


class LargeObjectsCollector:
    """Objects of at least ``threshold_bytes`` (default 1 MiB), the ``top`` largest."""

    name = "large_objects"
    cost = "scan"
    section_type = LargeObjectsSection

    def __init__(self, threshold_bytes: int = 1 << 20, top: int = 20, where: bool = True) -> None:
        self.threshold_bytes = check_int("threshold_bytes", threshold_bytes, low=1)
        self.top = check_int("top", top, low=1)
        self.where = check_bool("where", where)

    def heap_request(self) -> HeapRequest:
        """What this collector needs from the shared heap walk."""
        return HeapRequest(
            large_threshold=self.threshold_bytes, large_top=self.top, where=self.where
        )

    def collect(self) -> dict[str, Any]:
        """Rows for the largest objects over the threshold."""
        scan = get_scan(self.heap_request())
        rows = [
            object_row(scan, obj, size) for size, obj in scan.large if size >= self.threshold_bytes
        ]
        del rows[self.top :]
        return {"threshold_bytes": self.threshold_bytes, "objects": rows, "count": len(rows)}
