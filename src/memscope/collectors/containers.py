"""The ``containers`` collector: the largest dicts, lists, sets, deques... and where they live.

In a deep snapshot (or with ``deep=True``) each row also gets ``retained_bytes`` (what
would be freed if the container went: it and all only it keeps alive) and ``deep_bytes``
(all it reaches), by the shared walk of ``_deep``, within one time budget for the whole
section: rows past it get None and the section says it was cut (``deep_cut``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .._base.collector import HeapRequest
from .._base.section import Change, Section, flatten_numbers
from .._base.units import format_bytes, unit_of
from .._base.validate import check_bool, check_int, check_number
from ._deep import deep_note, deep_words, scan_rows_sizes
from ._heap import get_scan, object_row

__all__ = ["ContainersCollector", "ContainersSection", "TopChange", "diff_top_rows"]


@dataclass(frozen=True)
class TopChange(Change):
    """A change of a row of a bounded top list; ``note`` says when one side only bounds it.

    A row missing from one snapshot's top list was not zero there: it was at most the
    list's smallest row. ``before`` (or ``after``) is then that bound and ``note`` says so
    ("not in the top 20"), so a row that fell out of a list never reads as shrinking to 0.
    """

    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, with the note."""
        data = super().to_dict()
        data["note"] = self.note
        return data


def _floor(rows: Sequence[Mapping[str, Any]], field: str, full: bool) -> float:
    if not full or not rows:
        return 0
    values = [r.get(field) for r in rows]
    return min((v for v in values if isinstance(v, (int, float))), default=0)


Floor = Callable[[str, Mapping[str, Any], str], "tuple[float, str] | None"]


def diff_top_rows(
    section: str,
    table: str,
    fields: tuple[str, ...],
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    *,
    full_before: bool,
    full_after: bool,
    identity: Callable[[Mapping[str, Any]], object] | None = None,
    key: str = "key",
    floor: Floor | None = None,
    measured: tuple[str, ...] = (),
) -> list[Change]:
    """Row-by-row changes of two top lists: paired by ``identity`` first, then by ``key``.

    A row on one side only is compared with the other list's smallest row when that list
    was full (``full_*``): it was "not in the top N", at most that much. ``floor(side,
    row, field)`` replaces that rule: (the bound, a note), or None when nothing bounds it.
    Fields in ``measured`` (a retained size) are told only between two paired rows that
    both have a number from a walk the budget did not cut (``deep_truncated``): a row
    without one was not measured, nothing bounds it.
    """

    def default(side: str, row: Mapping[str, Any], field: str) -> tuple[float, str] | None:
        rows, full = (before, full_before) if side == "before" else (after, full_after)
        return (_floor(rows, field, full), f"not in the top {len(rows)} {side}" if full else "")

    floor_of = floor or default
    pairs: list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
    olds = [r for r in before if isinstance(r, Mapping)]
    news = [r for r in after if isinstance(r, Mapping)]
    left = list(range(len(olds)))
    if identity is not None:
        by_id: dict[object, int] = {}
        for i in left:
            ident = identity(olds[i])
            if ident is not None:
                by_id.setdefault(ident, i)
        unpaired_new = []
        taken: set[int] = set()
        for row in news:
            ident = identity(row)
            found = by_id.get(ident) if ident is not None else None
            if found is not None and found not in taken:
                taken.add(found)
                pairs.append((olds[found], row))
            else:
                unpaired_new.append(row)
        left = [i for i in left if i not in taken]
        news = unpaired_new
    by_key: dict[str, list[int]] = {}
    for i in left:
        by_key.setdefault(str(olds[i].get(key)), []).append(i)  # two types may share a name
    taken = set()
    for row in news:
        same = by_key.get(str(row.get(key)))
        if same:
            match = same.pop(0)
            taken.add(match)
            pairs.append((olds[match], row))
        else:
            pairs.append((None, row))
    pairs.extend((olds[i], None) for i in left if i not in taken)
    changes: list[Change] = []
    a: Any
    b: Any
    for old, new in pairs:
        name = str((new if new is not None else old or {}).get(key))
        for field in fields + measured:
            note = ""
            if field in measured:
                a = old.get(field) if old is not None else None
                b = new.get(field) if new is not None else None
                cut = any(r is not None and r.get("deep_truncated") for r in (old, new))
                if cut or not (_number(a) and _number(b)):
                    continue  # a walk the budget cut gives only a lower bound
            elif old is not None and new is not None:
                a, b = old.get(field, 0), new.get(field, 0)
            else:
                one = new if new is not None else old
                assert one is not None
                bound = floor_of("before" if new is not None else "after", one, field)
                if bound is None:
                    continue  # nothing bounds this field on the other side
                if new is not None:
                    (a, note), b = bound, new.get(field, 0)
                else:
                    a, (b, note) = one.get(field, 0), bound
            if not (_number(a) and _number(b)):
                continue
            if note and ((new is not None and b <= a) or (new is None and a <= b)):
                continue  # within the bound: no change can be told
            if a != b:
                changes.append(
                    TopChange(section, f"{table}[{name}].{field}", a, b, unit_of(field), note)
                )
    return changes


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_object(pid: object) -> Callable[[Mapping[str, Any]], object]:
    def identity(row: Mapping[str, Any]) -> object:
        oid = row.get("id")
        return None if oid is None or pid is None else (pid, oid, row.get("type"))

    return identity


_FIELD_WORDS = {"length": "entries", "retained_bytes": "retains", "deep_bytes": "reaches"}


class ContainersSection(Section):
    """The largest containers by length, each with a one-line summary and where it is held."""

    name = "containers"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "top": ("key", ("length", "size_bytes")),
    }
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"deep_seconds", "deep_rows"}

    def rank_weight(self, key: str) -> float:
        """A named container that grew is the most telling line of a diff: rank it high;
        what it retains next (a container can keep more without getting longer)."""
        if key.endswith(".length"):
            return 20.0
        return 2.0 if key.endswith(".retained_bytes") else 1.0

    def describe(self, key: str) -> str:
        """``container reports_app._registry['acme']: length`` for a row of the top list."""
        if key.startswith("top[") and "]." in key:
            ident, field = key[4:].rsplit("].", 1)
            row = next((r for r in self.get("top") or () if r.get("key") == ident), None)
            where = (row.get("path") or row.get("where") or ident) if row else ident
            return f"container {where}: {_FIELD_WORDS.get(field, field)}"
        return super().describe(key)

    def diff(self, earlier: Section | None) -> list[Change]:
        """Changes; rows pair by identity within one process, else by their holder path."""
        before = earlier.to_dict() if earlier is not None else {}
        changes = [
            Change(self.name, k, before.get(k, 0), v, unit_of(k))
            for k, v in flatten_numbers(self._data).items()
            if k not in self.ignore and v != before.get(k, 0)
        ]
        old_rows = before.get("top") or []
        new_rows = self.get("top") or []
        pid = self.get("pid")
        same = pid is not None and pid == before.get("pid")
        changes += diff_top_rows(
            self.name,
            "top",
            ("length", "size_bytes"),
            old_rows,
            new_rows,
            full_before=len(old_rows) >= (before.get("limit") or len(old_rows) + 1),
            full_after=len(new_rows) >= (self.get("limit") or len(new_rows) + 1),
            identity=_same_object(pid) if same else None,
            measured=("retained_bytes", "deep_bytes"),
        )
        return changes

    def summary_lines(self, top: int = 10) -> list[str]:
        """One line per container, longest first."""
        rows = self["top"]
        if not rows:
            return ["no container over the reporting floor"]
        lines = []
        for row in rows[:top]:
            where = row.get("path") or row.get("where") or "(holder not found cheaply)"
            lines.append(
                f"{row['length']:>10,} items {format_bytes(row['size_bytes']):>10}  "
                f"{row['summary']}{deep_words(row)}  <- {where}"
            )
        return lines + _keeps_most(rows) + deep_note(self, len(rows))


class ContainersCollector:
    """Longest containers on the heap (untracked dicts of plain values included)."""

    name = "containers"
    cost = "scan"
    section_type = ContainersSection

    def __init__(
        self,
        top: int = 20,
        where: bool = True,
        *,
        deep: bool | None = None,
        deep_seconds: float = 0.25,
        deep_objects: int = 2_000_000,
    ) -> None:
        self.top = check_int("top", top, low=1)
        self.where = check_bool("where", where)
        self.deep, self.deep_seconds, self.deep_objects = deep_options(
            deep, deep_seconds, deep_objects
        )

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
        # pid and limit are context, not changes: the diff pairs rows by identity within one
        # process, and a row missing from a full list is "not in the top N", not zero
        data = {"top": rows, "count": len(rows), "limit": self.top, "pid": os.getpid()}
        objects = [entry[-1] for entry in scan.containers[: self.top]]
        data.update(
            scan_rows_sizes(
                self.deep,
                rows,
                objects,
                scan,
                seconds=self.deep_seconds,
                max_objects=self.deep_objects,
            )
        )
        return data


def _keeps_most(rows: list[dict[str, Any]]) -> list[str]:
    """A line for the container that retains the most, when it is not the longest: the
    largest cache by what it keeps, not by its length."""
    measured = [r for r in rows if type(r.get("retained_bytes")) is int]
    if not measured:
        return []
    best = max(measured, key=lambda r: int(r["retained_bytes"]))
    if best is rows[0]:
        return []
    where = best.get("path") or best.get("where") or best.get("key")
    return [
        f"keeps the most: {where} retains {format_bytes(best['retained_bytes'])} "
        f"({best['length']:,} items)"
    ]


def deep_options(deep: object, seconds: object, objects: object) -> tuple[bool | None, float, int]:
    """Checked ``deep``, ``deep_seconds`` and ``deep_objects`` of a scan collector."""
    if deep is not None and not isinstance(deep, bool):
        raise TypeError(f"deep must be True, False or None, got {type(deep).__name__}")
    return (
        deep,
        check_number("deep_seconds", seconds, low=0.0, low_open=True, unit="seconds"),
        check_int("deep_objects", objects, low=1),
    )
