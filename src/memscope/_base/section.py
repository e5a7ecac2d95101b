"""Section: one collector's part of a snapshot, and how it diffs itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .units import format_value, unit_of


@dataclass(frozen=True)
class Change:
    """One value that differs between two snapshots of the same section."""

    section: str
    key: str
    before: float
    after: float
    unit: str  # "bytes", "seconds", "count" or ""

    @property
    def delta(self) -> float:
        """``after - before``."""
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "section": self.section,
            "key": self.key,
            "before": self.before,
            "after": self.after,
            "delta": self.delta,
            "unit": self.unit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        """Inverse of :meth:`to_dict`."""
        return cls(
            section=str(data["section"]),
            key=str(data["key"]),
            before=data["before"],
            after=data["after"],
            unit=str(data.get("unit", "")),
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten_numbers(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of nested mappings, keyed by dotted path (lists are skipped)."""
    out: dict[str, float] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if _is_number(value):
            out[path] = value
        elif isinstance(value, Mapping):
            out.update(flatten_numbers(value, path + "."))
    return out


class Section(Mapping[str, Any]):
    """A collector's JSON-safe data, readable like a dict, that knows how to diff itself.

    Subclasses set ``name`` and may set ``tables``: list-valued keys whose rows are
    matched by an identity field so that they diff row by row, e.g.
    ``{"by_type": ("type", ("count", "size_bytes"))}``.
    """

    name: ClassVar[str] = ""
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {}
    # numeric keys not worth reporting as changes (identifiers, configuration)
    ignore: ClassVar[frozenset[str]] = frozenset({"pid", "schema", "limit", "threshold_bytes"})

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data: dict[str, Any] = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} keys={sorted(self._data)}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Section):
            return self.name == other.name and self._data == other._data
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def rank_weight(self, key: str) -> float:
        """How much a change of ``key`` matters when ranking a diff (context keys weigh less)."""
        return 1.0

    def describe(self, key: str) -> str:
        """How a change of ``key`` is named in a diff's summary (``section: key`` by default)."""
        return f"{self.name}: {key}"

    def to_dict(self) -> dict[str, Any]:
        """The section's data as plain JSON-safe values."""
        return dict(self._data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Section:
        """Rebuild a section from :meth:`to_dict` output."""
        return cls(data)

    def diff(self, earlier: Section | None) -> list[Change]:
        """Changes from ``earlier`` (same collector) to this section."""
        before = earlier.to_dict() if earlier is not None else {}
        after = self._data
        changes: list[Change] = []
        old_nums = flatten_numbers(before)
        for key, value in flatten_numbers(after).items():
            if key.rsplit(".", 1)[-1] in self.ignore:
                continue
            prev = old_nums.get(key, 0)
            if value != prev:
                changes.append(Change(self.name, key, prev, value, unit_of(key)))
        for table, (ident, fields) in self.tables.items():
            changes.extend(
                self._diff_table(table, ident, fields, before.get(table), after.get(table))
            )
        return changes

    def _diff_table(
        self,
        table: str,
        ident: str,
        fields: tuple[str, ...],
        before: Any,
        after: Any,
    ) -> list[Change]:
        old = {str(row.get(ident)): row for row in before or () if isinstance(row, Mapping)}
        new = {str(row.get(ident)): row for row in after or () if isinstance(row, Mapping)}
        changes: list[Change] = []
        for key in new.keys() | old.keys():
            for field in fields:
                a = old.get(key, {}).get(field, 0)
                b = new.get(key, {}).get(field, 0)
                if _is_number(a) and _is_number(b) and a != b:
                    changes.append(
                        Change(self.name, f"{table}[{key}].{field}", a, b, unit_of(field))
                    )
        return changes

    def summary_lines(self, top: int = 10) -> list[str]:
        """Human-readable lines for reports, at most about ``top`` rows (subclasses refine this)."""
        lines = []
        for key, value in flatten_numbers(self._data).items():
            lines.append(f"{key}: {format_value(value, unit_of(key))}")
            if len(lines) >= top:
                break
        return lines
