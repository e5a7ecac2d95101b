"""What a no-growth check reports: TypeGrowth, AllocationSite and GrowthReport."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memscope._base.units import format_bytes

__all__ = ["METRIC_NAMES", "AllocationSite", "GrowthReport", "TypeGrowth", "signed"]

#: how the report names each key of ``GrowthReport.deltas``
METRIC_NAMES = {
    "blocks": "allocated blocks",
    "malloc_bytes": "malloc'd bytes",
    "fds": "open file descriptors",
    "threads": "threads",
    "tasks": "asyncio tasks",
    "traced_bytes": "traced bytes",
}
#: the resources, shown first: they leak on net growth and hold more than they weigh
RESOURCES = ("fds", "threads", "tasks")
_SHOWN_STEPS = 12  # a longer series is shown as its first and last steps


def signed(values: Sequence[int]) -> str:
    """Per-round deltas as ``+1 +0 -2``; a long series as its ends around ``...``."""
    if len(values) > _SHOWN_STEPS:
        half = _SHOWN_STEPS // 2
        head = " ".join(f"{v:+d}" for v in values[:half])
        tail = " ".join(f"{v:+d}" for v in values[-half:])
        return f"{head} ... {tail} ({len(values)} rounds, net {sum(values):+d})"
    return " ".join(f"{v:+d}" for v in values)


@dataclass
class TypeGrowth:
    """One type's per-round count deltas, its count at the end and its size change."""

    type: str
    deltas: list[int]
    count: int
    size_bytes_delta: int
    unit: str = "objects"  # what ``deltas`` count: "objects", or "bytes" for in-place growth
    #: the shape of the series: "steady" (every round) or "steps" (an intermittent leak)
    shape: str = "steady"

    def format(self) -> str:
        """One line for the report."""
        unit = " bytes" if self.unit == "bytes" else ""
        how = ", in steps" if self.shape == "steps" else ""
        return (
            f"{self.type}: {signed(self.deltas)}{unit}  (now {self.count:,} objects, "
            f"{format_bytes(self.size_bytes_delta)} over the measured rounds{how})"
        )


@dataclass
class AllocationSite:
    """A tracemalloc allocation site whose memory grew over the measured rounds."""

    filename: str
    lineno: int
    size_bytes_delta: int
    count_delta: int
    traceback: list[str] = field(default_factory=list)
    #: where the allocation was made, when ``filename`` is the first frame outside the
    #: stdlib and installed packages and the block itself came from deeper down
    allocated_in: str = ""

    def format(self, full: bool = False) -> str:
        """The site line; with ``full`` its traceback too (most recent call last)."""
        head = (
            f"{format_bytes(self.size_bytes_delta)} in {self.count_delta:+d} blocks  "
            f"{self.filename}:{self.lineno}"
        )
        if self.allocated_in:
            head += f"  (allocated in {self.allocated_in})"
        if not full:
            # the site's own line of source, when the traceback has it
            for k, line in enumerate(self.traceback):
                if line == f'File "{self.filename}", line {self.lineno}':
                    nxt = self.traceback[k + 1] if k + 1 < len(self.traceback) else ""
                    if nxt.startswith("  "):
                        return f"{head}\n  {nxt}"
            return head
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
    #: fds, threads and tasks from the first reading to the last, warmup runs included
    net: dict[str, int] = field(default_factory=dict)
    #: how the check measured: "screen" (the long-lived heap frozen, cheap readings) and,
    #: after a leak verdict, "census" (a pass with the complete census for the evidence)
    passes: list[str] = field(default_factory=list)

    @property
    def leaked(self) -> bool:
        """True when at least one leak rule fired."""
        return bool(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the report."""
        data = asdict(self)
        data["leaked"] = self.leaked
        return data

    def format(self, top: int = 10, full: bool = False) -> str:
        """The human-readable report that :class:`MemoryGrowthError` carries.

        Resources first, then types (the application's own before builtins) and the
        allocation sites; about 40 lines at most. ``full`` adds each site's traceback.
        """
        verdict = "LEAK" if self.leaked else "no leak"
        lines = [
            f"memscope no-growth check of {self.label}: {verdict} "
            f"({self.warmup} warmup + {self.rounds} measured rounds, {self.seconds:.2f} s)"
        ]
        lines.extend(f"  ! {reason}" for reason in self.failures)
        lines.append("  per-round deltas:")
        keys = [k for k in RESOURCES if k in self.deltas]
        keys += [k for k in self.deltas if k not in RESOURCES]
        for key in keys:
            values = self.deltas[key]
            extra = ""
            if key in self.net:
                extra = f"  (net {sum(values):+d}; {self.net[key]:+d} since the first run)"
            lines.append(f"    {METRIC_NAMES.get(key, key):<22} {signed(values)}{extra}")
        if self.grew:
            lines.append("  types that grew:")
            lines.extend(f"    {row.format()}" for row in self.grew[:top])
            if len(self.grew) > top:
                lines.append(f"    ... and {len(self.grew) - top} more")
        if self.grew_bytes:
            lines.append("  types whose bytes grew every round (objects growing in place):")
            lines.extend(f"    {row.format()}" for row in self.grew_bytes[: min(top, 5)])
        if self.sites:
            lines.append("  top allocation sites of the growth (tracemalloc):")
            for site in self.sites[: min(top, 5)]:
                lines.extend("    " + line for line in site.format(full=full).splitlines())
        elif self.leaked and not self.tracing:
            lines.append("  (allocation sites not named: tracing was off for this check)")
        if self.ignored:
            lines.append("  ignored types that grew:")
            lines.extend(f"    {row.format()}" for row in self.ignored[: min(top, 3)])
        if self.noise:
            lines.append("  noise (changed, but not the shape of a leak):")
            lines.extend(f"    {item}" for item in self.noise[: min(top, 5)])
        if not self.census:
            lines.append("  (census off: object counts by type were not read)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
