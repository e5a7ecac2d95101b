"""The ``tracked`` collector: a row per object registered with :func:`memscope.track`.

The registry itself lives in the bottom layer (``memscope._base.tracking``); this module
turns it into a section: name, type, len, size and the object's own statistics (a
guard object's hits, misses, evictions), which diff by name like any table.

Deep sizes (by default in deep snapshots, ``TrackedCollector(deep=True)`` for every one):
``deep_bytes`` is everything the object reaches, ``retained_bytes`` what only it keeps
alive (what would be freed without it). The walk (``deep_size``, in ``_deep``, shared
with the containers and large_objects sections) runs no user code and is bounded by a
time and an object budget; a cut walk says so (``deep_truncated``) and its deep size is
a lower bound. docs/why.md compares it with pympler's asizeof.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from .._base import tracking
from .._base.collector import snapshot_depth
from .._base.section import Change, Section
from .._base.units import format_bytes, type_name, unit_of
from .._base.validate import check_int, check_number
from ._deep import DeepSize, deep_size, namespaces

__all__ = ["DeepSize", "TrackedCollector", "TrackedSection", "deep_size", "namespaces"]


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
            deep = ""
            if "deep_bytes" in row:
                cut = ">=" if row.get("deep_truncated") else ""
                deep = f" deep={cut}{format_bytes(row['deep_bytes'])}"
                if row.get("retained_bytes") is not None:
                    deep += f" retained={format_bytes(row['retained_bytes'])}"
            lines.append(
                f"{row['name']}: {row['type']} len={row.get('len')} size={approx}{size}{deep}"
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
        earlier_rows = {
            str(row.get("name")): row
            for row in (earlier.get("objects") if earlier is not None else None) or ()
            if isinstance(row, Mapping)
        }
        for row in self.get("objects") or ():
            if not isinstance(row, Mapping):
                continue
            name = str(row.get("name"))
            changes.extend(self._deep_changes(name, row, earlier_rows.get(name)))
            old = before.get(name, {})
            for key, value in (row.get("stats") or {}).items():
                prev = old.get(key, 0)
                if _is_count(value) and _is_count(prev) and value != prev:
                    changes.append(
                        Change(self.name, f"objects[{name}].stats.{key}", prev, value, unit_of(key))
                    )
        return changes

    def _deep_changes(
        self, name: str, row: Mapping[str, Any], old: Mapping[str, Any] | None
    ) -> list[Change]:
        # only between two rows that both were measured: a cheap snapshot has no deep size,
        # which is not a deep size of 0
        out = []
        for key in ("deep_bytes", "retained_bytes"):
            a: Any = old.get(key) if old is not None else None
            b: Any = row.get(key)
            if _is_count(a) and _is_count(b) and a != b:
                out.append(Change(self.name, f"objects[{name}].{key}", a, b, "bytes"))
        return out

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

    def __init__(
        self,
        max_rows: int = 200,
        *,
        deep: bool | None = None,
        deep_seconds: float = 2.0,
        deep_objects: int = 5_000_000,
    ) -> None:
        self.max_rows = check_int("max_rows", max_rows, low=1)
        if deep is not None and not isinstance(deep, bool):
            raise TypeError(f"deep must be True, False or None, got {type(deep).__name__}")
        self.deep = deep  # None: deep sizes in deep snapshots only
        self.deep_seconds = check_number(
            "deep_seconds", deep_seconds, low=0.0, low_open=True, unit="seconds"
        )
        self.deep_objects = check_int("deep_objects", deep_objects, low=1)

    def collect(self) -> dict[str, Any]:
        """Rows for the live tracked objects, largest first, bounded by max_rows."""
        rows = []
        names: dict[str, int] = {}
        objects: dict[str, object] = {}  # label -> object, for the deep sizes
        for name, obj, clearable in tracking.tracked_objects():
            n = names[name] = names.get(name, 0) + 1
            label = name if n == 1 else f"{name}#{n}"
            objects[label] = obj
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
        obj = None  # the loop's last object: not a holder of it during the deep sizes
        rows.sort(key=lambda r: r["size_bytes"], reverse=True)
        deep = self.deep if self.deep is not None else snapshot_depth.get() == "deep"
        if deep:
            self._add_deep_sizes(rows[: self.max_rows], objects)
        objects.clear()
        return {
            "count": len(rows),
            "dropped_total": tracking.dropped_total,
            "objects": rows[: self.max_rows],
        }

    def _add_deep_sizes(self, rows: list[dict[str, Any]], objects: dict[str, object]) -> None:
        """Deep and retained bytes for ``rows``, largest first, within the budgets."""
        deadline = time.monotonic() + self.deep_seconds
        budget = self.deep_objects
        stop = namespaces()
        # ``objects`` holds each once: a tracked object inside another is the outer one's
        ours = Counter(map(id, objects.values()))
        for row in rows:
            obj = objects.get(row["name"])
            if obj is None:
                continue
            try:
                found = deep_size(obj, deadline=deadline, max_objects=budget, stop=stop, held=ours)
            except Exception as exc:  # contained: the row says why it has no deep size
                row["deep_error"] = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                obj = None
            budget = max(budget - found.deep_objects, 1)
            row["deep_bytes"] = found.deep_bytes
            row["deep_objects"] = found.deep_objects
            row["retained_bytes"] = found.retained_bytes
            row["deep_truncated"] = found.truncated
