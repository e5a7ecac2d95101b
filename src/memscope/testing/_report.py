"""What a no-growth check reports: TypeGrowth, AllocationSite and GrowthReport."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from memscope._base.units import format_bytes

__all__ = ["METRIC_NAMES", "AllocationSite", "GrowthReport", "TypeGrowth"]

#: how the report names each key of ``GrowthReport.deltas``
METRIC_NAMES = {
    "blocks": "allocated blocks",
    "fds": "open file descriptors",
    "threads": "threads",
    "tasks": "asyncio tasks",
    "traced_bytes": "traced bytes",
}


@dataclass
class TypeGrowth:
    """One type's per-round count deltas, its count at the end and its size change."""

    type: str
    deltas: list[int]
    count: int
    size_bytes_delta: int
    unit: str = "objects"  # what ``deltas`` count: "objects", or "bytes" for in-place growth

    def format(self) -> str:
        """One line for the report."""
        steps = " ".join(f"{d:+d}" for d in self.deltas)
        unit = " bytes" if self.unit == "bytes" else ""
        return (
            f"{self.type}: {steps}{unit}  (now {self.count:,} objects, "
            f"{format_bytes(self.size_bytes_delta)} over the measured rounds)"
        )


@dataclass
class AllocationSite:
    """A tracemalloc allocation site whose memory grew over the measured rounds."""

    filename: str
    lineno: int
    size_bytes_delta: int
    count_delta: int
    traceback: list[str] = field(default_factory=list)

    def format(self) -> str:
        """The site line then its traceback (most recent call last)."""
        head = (
            f"{format_bytes(self.size_bytes_delta)} in {self.count_delta:+d} blocks  "
            f"{self.filename}:{self.lineno}"
        )
        return "\n".join([head, *("  " + line for line in self.traceback)])


@dataclass
class GrowthReport:
    """Everything a no-growth check measured and concluded; ``to_dict()`` is JSON-safe."""

    label: str
    warmup: int
    rounds: int
    deltas: dict[str, list[int]]
    failures: list[str]
    grew: list[TypeGrowth]
    ignored: list[TypeGrowth]
    noise: list[str]
    sites: list[AllocationSite]
    census: bool
    tracing: bool
    seconds: float
    #: types whose objects did not multiply but grew in place (a buffer appended to)
    grew_bytes: list[TypeGrowth] = field(default_factory=list)

    @property
    def leaked(self) -> bool:
        """True when at least one leak rule fired."""
        return bool(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the report."""
        data = asdict(self)
        data["leaked"] = self.leaked
        return data

    def format(self, top: int = 10) -> str:
        """The human-readable report that :class:`MemoryGrowthError` carries."""
        verdict = "LEAK" if self.leaked else "no leak"
        lines = [
            f"memscope no-growth check of {self.label}: {verdict} "
            f"({self.warmup} warmup + {self.rounds} measured rounds, {self.seconds:.2f} s)"
        ]
        for reason in self.failures:
            lines.append(f"  ! {reason}")
        lines.append("  per-round deltas:")
        for key, values in self.deltas.items():
            steps = " ".join(f"{v:+d}" for v in values)
            lines.append(f"    {METRIC_NAMES.get(key, key):<22} {steps}")
        if self.grew:
            lines.append("  types that grew every round:")
            lines.extend(f"    {row.format()}" for row in self.grew[:top])
            if len(self.grew) > top:
                lines.append(f"    ... and {len(self.grew) - top} more")
        if self.grew_bytes:
            lines.append("  types whose bytes grew every round (objects growing in place):")
            lines.extend(f"    {row.format()}" for row in self.grew_bytes[:top])
        if self.ignored:
            lines.append("  ignored types that grew every round:")
            lines.extend(f"    {row.format()}" for row in self.ignored[:top])
        if self.noise:
            lines.append("  noise (changed, but not every round: not a leak):")
            lines.extend(f"    {item}" for item in self.noise[:top])
        if self.sites:
            lines.append("  top allocation sites of the growth (tracemalloc):")
            for site in self.sites[:top]:
                lines.extend("    " + line for line in site.format().splitlines())
        elif self.leaked and not self.tracing:
            lines.append("  (allocation sites not named: tracing was off for this check)")
        if not self.census:
            lines.append("  (census off: object counts by type were not read)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
