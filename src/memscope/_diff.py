"""Diff and compare(): what changed between two snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _findings as rules
from ._base.section import Change
from ._base.units import format_value
from ._base.validate import check_int
from ._findings import Finding, find, type_weight
from ._snapshot import Snapshot

# how much one unit weighs when ranking changes of different kinds against each other
_RANK_WEIGHT = {"bytes": 1.0, "count": 64.0, "seconds": 1e7, "": 1.0}

# numbers that restate the process's memory: one line of the table, not five
_MEMORY = {
    ("process", "rss_bytes"): "rss",
    ("process", "vms_bytes"): "vms",
    ("process", "uss_bytes"): "uss",
    ("process", "cgroup.usage_bytes"): "cgroup usage",
    ("allocator", "heap_in_use_bytes"): "malloc heap in use",
    ("allocator", "arena_bytes"): "malloc arenas",
    ("allocator", "mmap_bytes"): "malloc mmap",
    ("allocator", "pymalloc_arena_bytes"): "pymalloc arenas",
    ("allocator", "pymalloc_used_bytes"): "pymalloc used",
    ("census", "size_bytes_total"): "python objects",
    ("accounting", "rss_bytes"): "accounted rss",
    ("accounting", "anon_bytes"): "anonymous memory",
    ("accounting", "malloc_in_use_bytes"): "malloc in use",
    ("accounting", "malloc_mmap_bytes"): "malloc mmap (accounted)",
    ("accounting", "python_arenas_bytes"): "python arenas",
}
# findings of types nothing is known to hold, weaker than this share of the strongest one,
# are left out of the opening sentences (a live process's noise); held containers stay
_STORY_SHARE = 0.01
# totals that are state, not counters, despite the suffix
_STATE_TOTALS = frozenset(
    {"objects_total", "size_bytes_total", "types_total", "modules_total", "own_types_total"}
)
_COUNTER_STATS = frozenset({"hits", "misses", "evictions", "expirations", "overflows", "dropped"})


def is_counter(change: Change) -> bool:
    """A cumulative counter (``collected_total``, a cache's hits): it grows in every healthy
    process, so a diff shows it as a rate and never ranks it above state."""
    leaf = change.key.rsplit(".", 1)[-1]
    if leaf.endswith("_total"):
        return leaf not in _STATE_TOTALS
    return ".stats." in change.key and leaf in _COUNTER_STATS


def _is_evidence(change: Change) -> bool:
    """Resources and the program's own objects: what leads the ranked table."""
    key, section = change.key, change.section
    if change.delta <= 0:
        return False
    if section == "process":
        if key == "num_threads":
            return change.delta >= rules.MIN_THREADS
        return (key.startswith("fds.") or key == "num_fds") and change.delta >= rules.MIN_FDS
    if section == "threads":
        return key == "count" and change.delta >= rules.MIN_THREADS
    if section == "tasks":
        return key in ("pending", "done") and change.delta >= rules.MIN_TASKS
    if section == "containers":
        return key.endswith("].length") and change.delta >= rules.MIN_ENTRIES
    if section == "census" and key.endswith("].count"):
        name = key[key.index("[") + 1 : -len("].count")]
        # a dotted name is not a builtin type; the interpreter's plumbing is no evidence
        return "." in name and change.delta >= rules.MIN_OBJECTS and type_weight(name) > 0.1
    return False


class Diff:
    """Per-section changes from snapshot ``a`` to snapshot ``b``."""

    __slots__ = ("_findings", "a", "b", "changes", "errors")

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
        self._findings: list[Finding] | None = None

    @property
    def seconds(self) -> float:
        """Time between the two snapshots."""
        return self.b.timestamp - self.a.timestamp

    def __getitem__(self, section: str) -> list[Change]:
        return self.changes[section]

    def ranked(self) -> list[Change]:
        """Every change, strongest evidence first: resources and the program's own objects,
        then state by size on one scale (each section weighs its own keys), then counters."""
        weighted = []
        for name, changes in self.changes.items():
            section = self.b.sections.get(name)
            for c in changes:
                try:
                    weight = section.rank_weight(c.key) if section is not None else 1.0
                except Exception:  # a third-party section's weights must not break the ranking
                    weight = 1.0
                tier = 2 if is_counter(c) else 0 if _is_evidence(c) else 1
                score = abs(c.delta) * _RANK_WEIGHT.get(c.unit, 1.0) * weight
                weighted.append((tier, -score, c))
        weighted.sort(key=lambda wc: (wc[0], wc[1]))
        return [c for _, _, c in weighted]

    def findings(self) -> list[Finding]:
        """What the diff says in plain sentences, strongest evidence of a leak first."""
        if self._findings is None:
            try:
                self._findings = find(self)
            except Exception:  # the story is a bonus: the table below it must still print
                self._findings = []
        return list(self._findings)

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
            "findings": [f.to_dict() for f in self.findings()],
        }

    def summary(self, top: int = 15, findings: int = 5) -> str:
        """Up to ``findings`` plain sentences, then the ``top`` strongest changes."""
        check_int("top", top, low=1)
        check_int("findings", findings, low=0)
        a = self.a.label or "a"
        b = self.b.label or "b"
        head = f"memscope diff {a!r} -> {b!r} over {self.seconds:.2f} s"
        if self.a.pid != self.b.pid:
            head += f" (pid {self.a.pid} -> {self.b.pid}: different processes)"
        lines = [head]
        story = self.findings()
        # a sentence far weaker than the first is the noise of a live process: left to the table
        strong = [
            f
            for f in story
            if f.score >= _STORY_SHARE * story[0].score or (f.kind != "type" and f.holder)
        ]
        lines.extend(f"  * {f.evidence}" for f in strong[:findings])
        ranked = self.ranked()
        if not ranked:
            lines.append("  no changes")
        rows = self._rows(ranked)
        if rows and len(lines) > 1:
            lines.append("  changes, strongest evidence first:")
        for row in rows[:top]:
            lines.append(row)
        if len(rows) > top:
            lines.append(f"  ... and {len(rows) - top} smaller changes")
        for name, error in sorted(self.errors.items()):
            lines.append(f"  ! {name}: {error}")
        return "\n".join(lines)

    def _rows(self, ranked: list[Change]) -> list[str]:
        """Table lines: memory restatements folded into one, counters as rates, bounds said."""
        rows: list[str] = []
        memory = [c for c in ranked if (c.section, c.key) in _MEMORY]
        memory_done = False
        for change in ranked:
            if (change.section, change.key) in _MEMORY:
                if not memory_done:
                    memory_done = True
                    rows.append(self._memory_line(memory))
                continue
            if is_counter(change):
                rate = change.delta / self.seconds if self.seconds > 0 else 0.0
                rows.append(
                    f"  {format_value(change.delta, change.unit, signed=True):>14}  "
                    f"{self._describe(change)}  "
                    f"({format_value(rate, change.unit)}/s, a counter)"
                )
                continue
            note = getattr(change, "note", "")
            before = format_value(change.before, change.unit)
            if note:
                side = "before" if note.endswith("before") else "after"
                bound = f"at most {before}" if side == "before" else before
                after = format_value(change.after, change.unit)
                after = f"at most {after}" if side == "after" else after
                span = f"{bound} -> {after}: {note}"
            else:
                span = f"{before} -> {format_value(change.after, change.unit)}"
            rows.append(
                f"  {format_value(change.delta, change.unit, signed=True):>14}  "
                f"{self._describe(change)}  ({span})"
            )
        return rows

    def _memory_line(self, memory: list[Change]) -> str:
        lead = memory[0]
        for change in memory:
            if (change.section, change.key) == ("process", "rss_bytes"):
                lead = change
        seen = {_MEMORY[(lead.section, lead.key)]}
        parts = []
        for c in memory:
            label = _MEMORY[(c.section, c.key)]
            if c is not lead and label not in seen:
                seen.add(label)
                parts.append(f"{label} {format_value(c.delta, c.unit, signed=True)}")
        others = ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")
        name = _MEMORY[(lead.section, lead.key)]
        text = (
            f"  {format_value(lead.delta, lead.unit, signed=True):>14}  memory: {name} "
            f"({format_value(lead.before, lead.unit)} -> {format_value(lead.after, lead.unit)})"
        )
        return text + (f"; the same change seen as {others}" if others else "")

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
