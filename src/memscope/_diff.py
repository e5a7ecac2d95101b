"""Diff and compare(): what changed between two snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base.section import Change
from ._base.units import format_value
from ._base.validate import check_int
from ._snapshot import Snapshot

# how much one unit weighs when ranking changes of different kinds against each other
_RANK_WEIGHT = {"bytes": 1.0, "count": 64.0, "seconds": 1e7, "": 1.0}


class Diff:
    """Per-section changes from snapshot ``a`` to snapshot ``b``."""

    __slots__ = ("a", "b", "changes", "errors")

    def __init__(
        self,
        a: Snapshot,
        b: Snapshot,
        changes: Mapping[str, list[Change]],
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self.a = a
        self.b = b
        self.changes: dict[str, list[Change]] = {k: list(v) for k, v in changes.items()}
        self.errors: dict[str, str] = dict(errors or {})

    @property
    def seconds(self) -> float:
        """Time between the two snapshots."""
        return self.b.timestamp - self.a.timestamp

    def __getitem__(self, section: str) -> list[Change]:
        return self.changes[section]

    def ranked(self) -> list[Change]:
        """Every change, largest first, on one scale; each section weighs its own keys."""
        weighted = []
        for name, changes in self.changes.items():
            section = self.b.sections.get(name)
            for c in changes:
                weight = section.rank_weight(c.key) if section is not None else 1.0
                weighted.append((abs(c.delta) * _RANK_WEIGHT.get(c.unit, 1.0) * weight, c))
        weighted.sort(key=lambda wc: wc[0], reverse=True)
        return [c for _, c in weighted]

    def get(self, section: str, key: str) -> Change | None:
        """The change of one key (dotted path) in one section, or None if it did not change."""
        for change in self.changes.get(section, ()):
            if change.key == key:
                return change
        return None

    def delta(self, section: str, key: str) -> float:
        """``after - before`` of one key, 0 when unchanged."""
        change = self.get(section, key)
        return 0 if change is None else change.delta

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the diff."""
        return {
            "schema": 1,
            "a": {"label": self.a.label, "timestamp": self.a.timestamp, "pid": self.a.pid},
            "b": {"label": self.b.label, "timestamp": self.b.timestamp, "pid": self.b.pid},
            "seconds": self.seconds,
            "sections": {
                name: [c.to_dict() for c in changes] for name, changes in self.changes.items()
            },
            "errors": dict(self.errors),
        }

    def summary(self, top: int = 15) -> str:
        """A short human summary, largest changes first."""
        check_int("top", top, low=1)
        a = self.a.label or "a"
        b = self.b.label or "b"
        head = f"memscope diff {a!r} -> {b!r} over {self.seconds:.2f} s"
        if self.a.pid != self.b.pid:
            head += f" (pid {self.a.pid} -> {self.b.pid}: different processes)"
        lines = [head]
        ranked = self.ranked()
        if not ranked:
            lines.append("  no changes")
        for change in ranked[:top]:
            lines.append(
                f"  {format_value(change.delta, change.unit, signed=True):>14}  "
                f"{self._describe(change)}  "
                f"({format_value(change.before, change.unit)} -> "
                f"{format_value(change.after, change.unit)})"
            )
        if len(ranked) > top:
            lines.append(f"  ... and {len(ranked) - top} smaller changes")
        for name, error in sorted(self.errors.items()):
            lines.append(f"  ! {name}: {error}")
        return "\n".join(lines)

    def _describe(self, change: Change) -> str:
        section = self.b.sections.get(change.section)
        if section is not None:
            try:
                return section.describe(change.key)
            except Exception:  # a third-party section's wording must not break the summary
                pass
        return f"{change.section}: {change.key}"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        n = sum(len(v) for v in self.changes.values())
        return f"<Diff {self.a.label!r} -> {self.b.label!r}: {n} changes>"


def compare(a: Snapshot, b: Snapshot) -> Diff:
    """Diff two snapshots section by section (``b`` is the later one)."""
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Snapshot):
            raise TypeError(f"{name} must be a memscope.Snapshot, got {type(value).__name__}")
    changes: dict[str, list[Change]] = {}
    errors: dict[str, str] = {}
    for name in sorted(a.sections.keys() | b.sections.keys()):
        later = b.sections.get(name)
        earlier = a.sections.get(name)
        if later is None or earlier is None:
            # a section one snapshot lacks (a cheap one against a deep one) is no growth
            # from zero: it is named, not diffed, whichever order the two come in
            which = "first" if later is None else "second"
            errors[name] = f"only in the {which} snapshot"
            if name in a.errors or name in b.errors:
                errors[name] += f" (the other: {b.errors.get(name) or a.errors.get(name)})"
            continue
        try:
            changes[name] = later.diff(earlier)
        except Exception as exc:  # a third-party section's diff must not break compare()
            errors[name] = f"diff failed: {type(exc).__name__}: {exc}"
    for name in sorted(a.errors.keys() | b.errors.keys()):
        if name not in errors and (name not in a.sections or name not in b.sections):
            errors[name] = b.errors.get(name) or a.errors.get(name) or "missing"
    return Diff(a, b, changes, errors)
