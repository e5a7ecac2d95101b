"""The ``large_objects`` collector: single objects over a size threshold, and where they live."""

from __future__ import annotations

from typing import Any, ClassVar

from .._section import Section, format_bytes
from ._heap import get_scan, summarize_container
from .census import type_name


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
        if not isinstance(threshold_bytes, int) or threshold_bytes < 1:
            raise ValueError(f"threshold_bytes must be an int >= 1, got {threshold_bytes!r}")
        if not isinstance(top, int) or top < 1:
            raise ValueError(f"top must be an int >= 1, got {top!r}")
        self.threshold_bytes = threshold_bytes
        self.top = top
        self.where = bool(where)

    def collect(self) -> dict[str, Any]:
        """Rows for the largest objects over the threshold."""
        scan = get_scan(large_threshold=self.threshold_bytes, large_top=self.top, where=self.where)
        rows = []
        for size, obj in scan.large:
            if size < self.threshold_bytes:
                continue
            where = scan.where.get(id(obj))
            rows.append(
                {
                    "key": where or type_name(type(obj)),
                    "type": type_name(type(obj)),
                    "size_bytes": size,
                    "summary": summarize_container(obj),
                    "where": where,
                }
            )
            if len(rows) >= self.top:
                break
        return {"threshold_bytes": self.threshold_bytes, "objects": rows, "count": len(rows)}
