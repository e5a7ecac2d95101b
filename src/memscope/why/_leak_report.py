"""``LeakReport``: what ``find_leaks()`` found, as small frozen rows of text and numbers.

Nothing here holds an object of the heap that was examined: every row is words and
numbers, so a report kept for later keeps nothing alive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .._base.units import format_bytes

__all__ = ["CycleGroup", "GarbageGroup", "Growth", "LeakReport", "UnreachedGroup"]


@dataclass(frozen=True)
class CycleGroup:
    """Objects of one type that only reference cycles kept alive: the cycle collector freed them."""

    type: str
    count: int
    size_bytes: int  # their own sizes (what sys.getsizeof reports, no user __sizeof__ run)
    sample: str = ""  # the cycle one of them is in, in words (the largest group only)


@dataclass(frozen=True)
class GarbageGroup:
    """Objects of one type in ``gc.garbage``: found unreachable but never freed."""

    type: str
    count: int
    size_bytes: int
    sample: str = ""  # the cycle one of them is in, in words, when it is in one


@dataclass(frozen=True)
class UnreachedGroup:
    """Objects of one type alive but reached from no root: held by a reference from C."""

    type: str
    count: int  # entry points (held from C, by no other unreached object) at the last pass
    objects: int  # they and the tracked objects only they hold
    size_bytes: int  # sys.getsizeof of those objects
    why: str  # "grew" (more entry points than at the first pass) or "program type"
    first_count: int = 0  # entry points at the first pass
    sample: str = ""  # what only they hold, by type: "they hold 500 dict, 500 list"


@dataclass(frozen=True)
class Growth:
    """A type, container or tracked object whose count grew at every census."""

    kind: str  # "type" (live instances), "container" (its length), "tracked" (its len)
    name: str  # the type's qualified name, the container's summary, the tracked name
    counts: tuple[int, ...]  # at each census, first to last (history rows: first and last)
    per_second: float  # growth rate over the censuses
    size_bytes: (
        int  # at the last census: all instances of the type, the container itself (0 for tracked)
    )
    where: str = ""  # who holds it (or, for a type, who holds its newest instances)
    unit: str = "count"  # what per_second counts: "count" (objects, items) or "bytes"
    span_seconds: float = 0.0  # history rows: the time the steady fit spans
    source: str = "check"  # "check" (its censuses) or "history" (a Monitor's snapshots)

    @property
    def growth(self) -> int:
        """How much it grew from the first census to the last."""
        return self.counts[-1] - self.counts[0] if self.counts else 0


@dataclass(frozen=True, eq=False)
class LeakReport:
    """What keeps memory that should have gone: reference cycles, gc.garbage, steady growth."""

    cycles: list[CycleGroup] = field(default_factory=list)  # largest first, at most ``limit``
    garbage: list[GarbageGroup] = field(default_factory=list)
    # at most ``limit`` from the check, then at most ``limit`` from a Monitor's history
    growing: list[Growth] = field(default_factory=list)
    cycle_objects: int = 0  # every object the check's collections freed (all types)
    cycle_bytes: int = 0  # their sizes, plus the strings and numbers only they held
    auto_collected: int = 0  # objects other collections freed meanwhile (types unseen)
    garbage_objects: int = 0  # len(gc.garbage)
    garbage_bytes: int = 0
    censuses: int = 0
    interval_seconds: float = 0.0
    seconds: float = 0.0
    partial: bool = False  # the timeout stopped the check before its last census
    history_snapshots: int = 0  # snapshots of the Monitor given as ``monitor=`` (0: none)
    notes: list[str] = field(default_factory=list)
    # held from C (no root reaches them): the flagged groups, largest first, at most ``limit``
    unreached: list[UnreachedGroup] = field(default_factory=list)
    # the rest: the interpreter's and installed C extensions' steady state, not a leak
    held_from_c_objects: int = 0
    held_from_c_types: int = 0
    unreached_checked: bool = False  # both unreached passes ran to the end
    unreached_seconds: float = 0.0  # the two passes together

    @property
    def clean(self) -> bool:
        """Nothing found: no cycles freed, no gc.garbage, nothing growing or held from C."""
        return not (self.cycle_objects or self.garbage_objects or self.growing or self.unreached)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the report (the rows are already bounded by ``limit``)."""
        out: dict[str, Any] = {
            "cycles": [asdict(c) for c in self.cycles],
            "garbage": [asdict(g) for g in self.garbage],
            "growing": [
                {**asdict(g), "counts": list(g.counts), "growth": g.growth} for g in self.growing
            ],
            "unreached": [asdict(u) for u in self.unreached],
        }
        for name in (
            "cycle_objects",
            "cycle_bytes",
            "auto_collected",
            "garbage_objects",
            "garbage_bytes",
            "censuses",
            "interval_seconds",
            "seconds",
            "partial",
            "history_snapshots",
            "held_from_c_objects",
            "held_from_c_types",
            "unreached_checked",
            "unreached_seconds",
        ):
            out[name] = getattr(self, name)
        out["clean"] = self.clean
        out["notes"] = list(self.notes)
        return out

    def __str__(self) -> str:
        lines: list[str] = []
        if self.cycle_objects:
            lines.append(
                f"reference cycles: the cycle collector freed {self.cycle_objects:,} objects"
                f" ({format_bytes(self.cycle_bytes)}) that only cycles kept alive"
            )
            for c in self.cycles:
                lines.append(f"  {c.count:>9,}  {format_bytes(c.size_bytes):>10}  {c.type}")
                if c.sample:
                    lines.append(f"             cycle: {c.sample}")
        if self.auto_collected:
            lines.append(
                f"other collections freed {self.auto_collected:,} more objects during the check"
                " (automatic ones, and the check's young-generation ones: types not seen)"
            )
        if self.garbage_objects:
            lines.append(
                f"gc.garbage holds {self.garbage_objects:,} uncollectable objects"
                f" ({format_bytes(self.garbage_bytes)}); they stay until removed from it"
            )
            for g in self.garbage:
                lines.append(f"  {g.count:>9,}  {format_bytes(g.size_bytes):>10}  {g.type}")
                if g.sample:
                    lines.append(f"             cycle: {g.sample}")
        if self.unreached:
            lines.append("held from C: alive, but no root reaches them (a reference no Python")
            lines.append("object owns, such as a C extension's Py_INCREF without its Py_DECREF)")
            for u in self.unreached:
                why = (
                    f"grew {u.first_count:,} -> {u.count:,} (+{u.count - u.first_count:,})"
                    " between the passes"
                    if u.why == "grew"
                    else "the program's type, unreached at both passes"
                )
                lines.append(
                    f"  {u.count:>9,}  {format_bytes(u.size_bytes):>10}  {u.type}"
                    f" ({u.objects:,} objects): {why}"
                )
                if u.sample:
                    lines.append(f"             {u.sample}")
        checked = [g for g in self.growing if g.source != "history"]
        history = [g for g in self.growing if g.source == "history"]
        if checked:
            span = max(self.censuses - 1, 1) * self.interval_seconds
            lines.append(f"grew at each of {self.censuses} censuses over {span:.1f} s:")
            for row in checked:
                series = " -> ".join(f"{n:,}" for n in row.counts)
                size = f", {format_bytes(row.size_bytes)}" if row.size_bytes else ""
                lines.append(f"  {row.kind} {row.name}: {series} (+{row.per_second:,.1f}/s{size})")
                if row.where:
                    lines.append(f"      held by {row.where}")
        if history:
            lines.append(f"grew steadily over the monitor's {self.history_snapshots} snapshots:")
            lines.extend(_history_line(row) for row in history)
        if not lines:
            lines.append(
                f"no leaks found: no reference cycles to free, gc.garbage empty, nothing grew"
                f" at each of {self.censuses} censuses"
                + (
                    ", nothing new or of the program's held from C"
                    if self.unreached_checked
                    else ""
                )
            )
        if self.unreached_checked:
            lines.append(
                f"held from C, steady: {self.held_from_c_objects:,} objects in"
                f" {self.held_from_c_types:,} types (the interpreter's and C extensions' own state,"
                " not a leak)"
            )
        if self.partial:
            lines.append("partial: the timeout stopped the check early")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _history_line(row: Growth) -> str:
    per_hour = row.per_second * 3600.0
    if row.unit == "bytes":
        rate = f"+{format_bytes(int(per_hour))}/h"
    else:
        rate = f"+{per_hour:,.0f}/h" if per_hour >= 100 else f"+{per_hour:.2f}/h"
    what = "objects" if row.kind == "type" else "len"
    seen = " -> ".join(f"{n:,}" for n in row.counts)
    detail = f"{what} {seen}" if seen else ""
    if row.size_bytes:
        detail = (
            f"{detail}, {format_bytes(row.size_bytes)}" if detail else format_bytes(row.size_bytes)
        )
    text = f"  {row.kind} {row.name}: steady over the last {_span(row.span_seconds)}, {rate}"
    text += f" ({detail})" if detail else ""
    return f"{text}\n      held by {row.where}" if row.where else text


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"
