"""The ``census`` collector: count and shallow size of every live object, by type and by module."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, ClassVar

from .._base.collector import HeapRequest
from .._base.section import Change, Section, flatten_numbers
from .._base.units import format_bytes, type_name, unit_of
from .._base.validate import check_bool, check_int
from ._heap import count_types, get_scan, sample_where
from .containers import diff_top_rows

__all__ = ["CensusCollector", "CensusSection", "count_types"]


def _module_of(tp: type) -> str:
    # group by top-level package: which package's types hold the memory
    module = getattr(tp, "__module__", None)
    return (module if isinstance(module, str) and module else "?").split(".", 1)[0]


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: made at run time (a class statement, PyType_FromSpec)
_NATIVE: dict[type, bool] = {}


def is_native(tp: type) -> bool:
    """Whether ``tp`` or a base (builtins aside) is a C extension type: it may hold memory
    that no Python object shows (an ``ssl.SSLContext``, a NumPy buffer, a zlib stream).

    Read from the types themselves (flags, ``__module__``, the module's file): no user code.
    """
    found = _NATIVE.get(tp)
    if found is not None:
        return found
    found = False
    for klass in type.__dict__["__mro__"].__get__(tp):
        if klass is object:
            continue
        mod = type.__dict__["__module__"].__get__(klass)
        if type(mod) is not str or mod == "builtins":
            continue
        if not klass.__flags__ & _HEAPTYPE:
            found = True  # a static type: written in C
            break
        module = sys.modules.get(mod)
        namespace = getattr(module, "__dict__", None) if module is not None else None
        where = namespace.get("__file__") if type(namespace) is dict else None
        if (type(where) is str and where.endswith((".so", ".pyd"))) or (
            where is None and mod in sys.builtin_module_names
        ):
            found = True
            break
    if len(_NATIVE) < 100_000:  # bounded: one entry per type seen
        _NATIVE[tp] = found
    return found


def _is_builtin(name: str) -> bool:
    return "." not in name


class CensusSection(Section):
    """Counts and sizes by type and by top-level module, and what the count covered."""

    name = "census"
    # how long the scan took is not a change in memory
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"seconds", "count_floor"}
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "by_type": ("type", ("count", "size_bytes")),
        "by_module": ("module", ("count", "size_bytes")),
    }

    def rank_weight(self, key: str) -> float:
        """Types lead; module totals and the grand total repeat them, so they rank lower."""
        if key.startswith("by_type[") or key.startswith("by_count["):
            return 1.0
        if key.startswith("by_module["):
            return 0.3
        return 0.2 if key in ("size_bytes_total", "objects_total") else 0.1

    def diff(self, earlier: Section | None) -> list[Change]:
        """Changes; a type missing from one side's table was "not in the top N" there."""
        before = earlier.to_dict() if earlier is not None else {}
        changes = [
            Change(self.name, k, before.get(k, 0), v, unit_of(k))
            for k, v in flatten_numbers(self._data).items()
            if k.rsplit(".", 1)[-1] not in self.ignore and v != before.get(k, 0)
        ]
        # a row missing from one side's table was "not in the top N" there, not zero
        for table, ident in (("by_type", "type"), ("by_module", "module")):
            old = before.get(table) or []
            new = self.get(table) or []
            changes += diff_top_rows(
                self.name,
                table,
                ("count", "size_bytes"),
                old,
                new,
                full_before=_truncated(before, table),
                full_after=_truncated(self._data, table),
                key=ident,
                floor=_TypeFloor(before, self._data) if table == "by_type" else None,
            )
        return changes

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


def _truncated(data: Mapping[str, Any], table: str) -> bool:
    counts = {"by_type": "types_total", "by_module": "modules_total", "by_count": "own_types_total"}
    total = data.get(counts[table])
    rows = data.get(table) or []
    return not isinstance(total, int) or total > len(rows)


class _TypeFloor:
    """What a type missing from one side's by_type was there: exact when by_count lists
    it; else at most the smallest size of by_type and (the program's own and extension
    types) the smallest count of by_count; a builtin type's count is not bounded."""

    def __init__(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        self.sides = {"before": before, "after": after}

    def __call__(self, side: str, row: Mapping[str, Any], field: str) -> tuple[float, str] | None:
        data = self.sides[side]
        name = row.get("type")
        listed = next((r for r in data.get("by_count") or () if r.get("type") == name), None)
        if listed is not None:
            value = listed.get(field, 0)
            return (value, "") if isinstance(value, (int, float)) else None
        if field == "size_bytes":
            if not _truncated(data, "by_type"):
                return 0, ""
            rows = data.get("by_type") or []
            return min((r.get("size_bytes", 0) for r in rows), default=0), (
                f"not in the top {len(rows)} {side}"
            )
        if _is_builtin(str(name)):
            return None
        floor = data.get("count_floor")
        if not isinstance(floor, int):
            return None
        return floor, f"not in the top {len(data.get('by_count') or [])} {side}" if floor else ""


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
        # the most numerous of the program's own types and of C extension types: 300
        # handlers or 200 SSL contexts are small in bytes, but they tell the story
        own = [r for r in rows if not _is_builtin(type_name(r[2]))]
        own.sort(key=lambda r: r[1], reverse=True)
        chosen = {id(r[2]): r for r in own[: self.top]}
        chosen.update((id(r[2]), r) for r in [r for r in own if is_native(r[2])][: self.top // 2])
        by_count = [
            {"type": type_name(tp), "count": count, "size_bytes": size}
            | ({"native": True} if is_native(tp) else {})
            | ({"where": where} if (where := sample_where(scan, tp)) else {})
            for size, count, tp in sorted(chosen.values(), key=lambda r: r[1], reverse=True)
        ]
        by_module = [
            {"module": mod, "count": c, "size_bytes": s}
            for mod, (c, s) in sorted(modules.items(), key=lambda kv: kv[1][1], reverse=True)[
                : self.top
            ]
        ]
        coverage = (
            "complete: gc-tracked objects, the locals of every thread's running frames, "
            "and the untracked objects reachable from them"
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
            "modules_total": len(modules),
            "own_types_total": len(own),
            # the most instances of a program's own type that by_count leaves out
            "count_floor": own[self.top][1] if len(own) > self.top else 0,
            "seconds": scan.seconds,
            "by_type": by_type,
            "by_module": by_module,
            "by_count": by_count,
        }
