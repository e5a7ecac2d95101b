"""The ``large_objects`` collector: single objects over a size threshold, and where they live.

In a deep snapshot (or with ``deep=True``) each row also gets ``retained_bytes`` and
``deep_bytes`` as the containers section's rows do, within one time budget for the section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._base.collector import HeapRequest
from .._base.section import Change, Section
from .._base.units import format_bytes
from .._base.validate import check_bool, check_int
from ._deep import deep_changes, deep_note, deep_words, scan_rows_sizes
from ._heap import get_scan, object_row
from .containers import deep_options


class LargeObjectsSection(Section):
    """Objects whose own size is over the threshold (a 50 MiB bytes, a dict of 2M slots...)."""

    name = "large_objects"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "objects": ("key", ("size_bytes",)),
    }
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"deep_seconds", "deep_rows"}

    def describe(self, key: str) -> str:
        """``large object app.cache['k']: retains`` for a row of the list."""
        if key.startswith("objects[") and "]." in key:
            ident, field = key[len("objects[") :].rsplit("].", 1)
            words = {"retained_bytes": "retains", "deep_bytes": "reaches"}
            return f"large object {ident}: {words.get(field, field)}"
        return super().describe(key)

    def diff(self, earlier: Section | None) -> list[Change]:
        """Sizes by row key, then retained and deep bytes where both rows were measured."""
        changes = super().diff(earlier)
        old = {
            str(r.get("key")): r
            for r in (earlier.get("objects") if earlier is not None else None) or ()
            if isinstance(r, Mapping)
        }
        pairs = [
            (old[str(r.get("key"))], r)
            for r in self.get("objects") or ()
            if isinstance(r, Mapping) and str(r.get("key")) in old
        ]
        return changes + deep_changes(self.name, "objects", pairs)

    def summary_lines(self, top: int = 10) -> list[str]:
        """One line per large object, largest first."""
        rows = self["objects"]
        if not rows:
            return [f"no object over {format_bytes(self['threshold_bytes'])}"]
        lines = []
        for row in rows[:top]:
            where = row.get("where") or "(holder not found cheaply)"
            lines.append(
                f"{format_bytes(row['size_bytes']):>10}  {row['summary']}{deep_words(row)}"
                f"  <- {where}"
            )
        return lines + deep_note(self, len(rows))


class LargeObjectsCollector:
    """Objects of at least ``threshold_bytes`` (default 1 MiB), the ``top`` largest."""

    name = "large_objects"
    cost = "scan"
    section_type = LargeObjectsSection

    def __init__(
        self,
        threshold_bytes: int = 1 << 20,
        top: int = 20,
        where: bool = True,
        *,
        deep: bool | None = None,
        deep_seconds: float = 0.25,
        deep_objects: int = 2_000_000,
    ) -> None:
        self.threshold_bytes = check_int("threshold_bytes", threshold_bytes, low=1)
        self.top = check_int("top", top, low=1)
        self.where = check_bool("where", where)
        self.deep, self.deep_seconds, self.deep_objects = deep_options(
            deep, deep_seconds, deep_objects
        )

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
        data = {"threshold_bytes": self.threshold_bytes, "objects": rows, "count": len(rows)}
        kept = [entry[-1] for entry in scan.large if entry[0] >= self.threshold_bytes]
        del kept[self.top :]
        data.update(
            scan_rows_sizes(
                self.deep,
                rows,
                kept,
                scan,
                seconds=self.deep_seconds,
                max_objects=self.deep_objects,
            )
        )
        return data
