"""The ``tracked`` collector: a row per object registered with :func:`memscope.track`.

The registry itself lives in the bottom layer (``memscope._base.tracking``); this module
turns it into a section: name, type, len, size and the object's own statistics (a
guard object's hits, misses, evictions), which diff by name like any table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._base import tracking
from .._base.section import Change, Section
from .._base.units import format_bytes, type_name, unit_of
from .._base.validate import check_int


class TrackedSection(Section):
    """Rows of tracked objects: name, type, len, size, and guard statistics."""

    name = "tracked"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "objects": ("name", ("len", "size_bytes")),
    }

    def summary_lines(self, top: int = 10) -> list[str]:
        """One line per tracked object, largest first."""
        rows = self.get("objects", [])
        if not rows:
            return ["no tracked objects (memscope.track(obj, name=...) adds one)"]
        lines = []
        for row in rows[:top]:
            size = format_bytes(row.get("size_bytes", 0))
            approx = "~" if row.get("size_estimated") else ""
            stats = row.get("stats") or {}
            extra = " ".join(f"{k}={v}" for k, v in list(stats.items())[:6])
            lines.append(
                f"{row['name']}: {row['type']} len={row.get('len')} size={approx}{size}"
                + (f" {extra}" if extra else "")
            )
        if len(rows) > top:
            lines.append(f"... {len(rows) - top} more")
        return lines

    def diff(self, earlier: Section | None) -> list[Change]:
        """Rows' len and size, then each row's own statistics (a cache's evictions, hits...)."""
        changes = super().diff(earlier)
        before = {
            str(row.get("name")): row.get("stats") or {}
            for row in (earlier.get("objects") if earlier is not None else None) or ()
            if isinstance(row, Mapping)
        }
        for row in self.get("objects") or ():
            if not isinstance(row, Mapping):
                continue
            name = str(row.get("name"))
            old = before.get(name, {})
            for key, value in (row.get("stats") or {}).items():
                prev = old.get(key, 0)
                if _is_count(value) and _is_count(prev) and value != prev:
                    changes.append(
                        Change(self.name, f"objects[{name}].stats.{key}", prev, value, unit_of(key))
                    )
        return changes

    def describe(self, key: str) -> str:
        """``cache models: evictions`` for a row statistic, the dotted key otherwise."""
        if key.startswith("objects[") and "].stats." in key:
            name, stat = key[len("objects[") :].rsplit("].stats.", 1)
            kind = next(
                (_kind(r.get("type")) for r in self.get("objects") or () if r.get("name") == name),
                "tracked",
            )
            return f"{kind} {name}: {stat}"
        return super().describe(key)


def _is_count(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(type_text: object) -> str:
    # what a user calls the object: a BoundedCache is a cache, a TaskTracker a task tracker
    text = str(type_text).rsplit(".", 1)[-1]
    return {
        "BoundedCache": "cache",
        "SSEBuffer": "SSE buffer",
        "TaskTracker": "task tracker",
        "KeyedLocks": "keyed locks",
        "AsyncKeyedLocks": "keyed locks",
        "MemoryGuard": "memory guard",
        "Monitor": "monitor",
    }.get(text, "tracked")


def _row(name: str, obj: object, clearable: bool) -> dict[str, Any]:
    """The section row of one tracked object: name, type, len, size and its own statistics."""
    row: dict[str, Any] = {"name": name, "type": type_name(type(obj)), "clearable": clearable}
    try:
        row["len"] = len(obj)  # type: ignore[arg-type]
    except Exception:
        row["len"] = None
    stats = tracking.stats_of(obj)
    size = stats.get("size_bytes")
    if type(size) is int and size >= 0:
        row["size_bytes"] = stats.pop("size_bytes")
        row["size_estimated"] = bool(stats.pop("size_estimated", False))
    else:
        stats.pop("size_bytes", None)
        row["size_bytes"], row["size_estimated"] = tracking.estimate_size(obj)
    row["stats"] = stats
    return row


class TrackedCollector:
    """Sizes and statistics of every object registered with memscope.track()."""

    name = "tracked"
    cost = "cheap"
    section_type = TrackedSection

    def __init__(self, max_rows: int = 200) -> None:
        self.max_rows = check_int("max_rows", max_rows, low=1)

    def collect(self) -> dict[str, Any]:
        """Rows for the live tracked objects, largest first, bounded by max_rows."""
        rows = []
        names: dict[str, int] = {}
        for name, obj, clearable in tracking.tracked_objects():
            n = names[name] = names.get(name, 0) + 1
            label = name if n == 1 else f"{name}#{n}"
            try:
                rows.append(_row(label, obj, clearable))
            except Exception as exc:  # one bad object costs its own row, not the section
                rows.append(
                    {
                        "name": label,
                        "type": type_name(type(obj)),
                        "clearable": clearable,
                        "len": None,
                        "size_bytes": 0,
                        "size_estimated": True,
                        "stats": {"error": f"{type(exc).__name__}: {exc}"},
                    }
                )
        rows.sort(key=lambda r: r["size_bytes"], reverse=True)
        return {
            "count": len(rows),
            "dropped_total": tracking.dropped_total,
            "objects": rows[: self.max_rows],
        }
