"""The ``containers`` collector: the largest dicts, lists, sets, deques... and where they live."""

from __future__ import annotations

from typing import Any, ClassVar

from .._base.collector import HeapRequest
from .._base.section import Section
from .._base.units import format_bytes
from .._base.validate import check_bool, check_int
from ._heap import get_scan, object_row


class ContainersSection(Section):
    """The largest containers by length, each with a one-line summary and where it is held."""

    name = "containers"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "top": ("key", ("length", "size_bytes")),
    }

    def rank_weight(self, key: str) -> float:
        """A named container that grew is the most telling line of a diff: rank it high."""
        return 20.0 if key.endswith(".length") else 1.0

    def summary_lines(self, top: int = 10) -> list[str]:
        """One line per container, longest first."""
        rows = self["top"]
        if not rows:
            return ["no container over the reporting floor"]
        lines = []
        for row in rows[:top]:
            where = row.get("where") or "(holder not found cheaply)"
            lines.append(
                f"{row['length']:>10,} items {format_bytes(row['size_bytes']):>10}  "
                f"{row['summary']}  <- {where}"
            )
        return lines


class ContainersCollector:
    """Longest containers on the heap (untracked dicts of plain values included)."""

    name = "containers"
    cost = "scan"
    section_type = ContainersSection

    def __init__(self, top: int = 20, where: bool = True) -> None:
        self.top = check_int("top", top, low=1)
        self.where = check_bool("where", where)

    def heap_request(self) -> HeapRequest:
        """What this collector needs from the shared heap walk."""
        return HeapRequest(containers=self.top, where=self.where)

    def collect(self) -> dict[str, Any]:
        """Rows for the ``top`` longest containers."""
        scan = get_scan(self.heap_request())
        rows = [
            object_row(scan, obj, size, length=length)
            for length, size, obj in scan.containers[: self.top]
        ]
        return {"top": rows, "count": len(rows)}
