"""The vocabulary collectors speak: the Collector protocol, costs, CollectorUnavailable, the
snapshot context, and HeapRequest (what a scan collector needs from the shared heap walk)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "COSTS",
    "Collector",
    "CollectorUnavailable",
    "Cost",
    "HeapRequest",
    "snapshot_depth",
]

Cost = Literal["cheap", "scan", "trace"]
COSTS: tuple[str, ...] = ("cheap", "scan", "trace")


class CollectorUnavailable(Exception):
    """Raised by a collector's ``collect()`` when its source is missing here; not an error."""


@runtime_checkable
class Collector(Protocol):
    """What snapshot() needs of a collector: a name, a cost and ``collect()``.

    Optional, found by duck typing: ``section_type`` (a Section subclass used to wrap,
    render and diff the data), ``available() -> str | None`` (a reason the collector cannot
    run here, or None) and, for scan collectors, ``heap_request() -> HeapRequest`` (what
    it needs from the one heap walk a snapshot shares among its scan collectors).
    """

    name: str
    cost: Cost

    def collect(self) -> Mapping[str, Any]:
        """Return this collector's section (a Section or a JSON-safe mapping)."""
        ...


class HeapRequest(NamedTuple):
    """What one scan collector needs from the heap walk; requests combine with :meth:`union`."""

    complete: bool = True  # follow gc-tracked objects to the untracked ones they hold
    containers: int = 0  # how many of the largest containers to keep
    large_threshold: int | None = None  # objects at least this big are large
    large_top: int = 0  # how many large objects to keep
    where: bool = True  # name who holds the kept objects

    def union(self, other: HeapRequest) -> HeapRequest:
        """A request that serves both."""
        if self.large_threshold is None:
            threshold = other.large_threshold
        elif other.large_threshold is None:
            threshold = self.large_threshold
        else:
            threshold = min(self.large_threshold, other.large_threshold)
        return HeapRequest(
            complete=self.complete and other.complete,
            containers=max(self.containers, other.containers),
            large_threshold=threshold,
            large_top=max(self.large_top, other.large_top),
            where=self.where or other.where,
        )

    def covers(self, other: HeapRequest) -> bool:
        """Whether a walk made for this request also answers ``other``."""
        # a complete walk's tallies include untracked objects: it cannot answer a
        # gc-tracked-only request, nor the other way round
        return self.complete == other.complete and self.union(other) == self

    @classmethod
    def combine(cls, requests: Iterable[HeapRequest]) -> HeapRequest | None:
        """The union of ``requests``, or None when there are none."""
        out: HeapRequest | None = None
        for request in requests:
            out = request if out is None else out.union(request)
        return out


# "cheap" or "deep" while snapshot() runs its collectors, None otherwise: a collector with a
# part whose cost grows with the heap can leave it to deep snapshots
snapshot_depth: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "memscope_snapshot_depth", default=None
)
