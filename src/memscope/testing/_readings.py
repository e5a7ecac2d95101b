"""The plain readings of one check: what the probe measured and the verdict judges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ._report import AllocationSite

__all__ = ["Readings", "TypeReadings"]


@dataclass(frozen=True)
class TypeReadings:
    """One type's census over the measured rounds (only types that changed are kept)."""

    type: str
    #: live objects at the last reading
    count: int
    #: change in live objects, one per measured round
    deltas: Sequence[int]
    #: change in the objects' total shallow bytes, one per measured round
    size_deltas: Sequence[int]
    #: bytes at the last reading minus bytes at the baseline
    size_bytes_delta: int


@dataclass(frozen=True)
class Readings:
    """Every reading of one check; the series are indexed by reading, 0 before the first run.

    There are ``warmup + rounds + 1`` readings; round ``k`` (1-based) spans readings
    ``warmup + k - 1`` and ``warmup + k``.
    """

    warmup: int
    rounds: int
    #: allocated blocks first thing at each reading (after collecting)
    blocks_before: Sequence[int]
    #: allocated blocks at the end of each reading, after the probe's own bookkeeping
    blocks_after: Sequence[int]
    #: pending asyncio tasks
    tasks: Sequence[int]
    #: bytes malloc'd (glibc mallinfo2: in use plus mmap'd) first thing at each reading
    #: and after the probe's bookkeeping; None where the C library cannot say
    malloc_before: Sequence[int] | None = None
    malloc_after: Sequence[int] | None = None
    #: open file descriptors, None where the OS cannot say
    fds: Sequence[int] | None = None
    #: live threads in the chosen scope, None when threads are ignored
    threads: Sequence[int] | None = None
    #: tracemalloc's traced bytes, None when the measured rounds were not traced
    traced: Sequence[int] | None = None
    #: the types whose census changed in a measured round
    types: Sequence[TypeReadings] = ()
    #: whether the census was read
    census: bool = False
    #: why the census failed, if it did
    census_error: str | None = None
    #: sites that grew over traced measured rounds
    sites: Sequence[AllocationSite] = field(default_factory=list)
    #: threads given a default name so far (``threading``'s ``Thread-N`` counter): rises
    #: when the runs start threads, even ones joined before the reading; None if unknown
    thread_starts: Sequence[int] | None = None
