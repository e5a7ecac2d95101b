"""The shape of one measured series: flat, steady growth, growth in steps, or levelling off.

A pure function of per-round deltas. It counts *new highs*: the rounds where the total
growth since the baseline first reaches ``min_growth`` above every earlier total. A leak
makes new highs for as long as it is measured (on every round, or every Nth round when
only some calls leak); noise that goes up and down makes a few and then none; a bounded
structure (a cache of 50 filled one entry a call, a pool growing to its cap) makes new
highs until it is full and then stops. The driver keeps measuring while a series could
still go either way (see :func:`wants_more`), up to a bound, and the verdict reads the
shape of the whole series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

__all__ = ["MIN_SERIES_FOR_STEPS", "Shape", "ShapeKind", "high_increments", "series_shape"]

ShapeKind = Literal["flat", "steady", "steps", "levelled", "unclear"]

#: growth in steps is only called a leak on a series at least this long (a few rounds
#: with some steps are what noise looks like)
MIN_SERIES_FOR_STEPS = 20
#: a series with new highs on at least this many tenths of its rounds keeps adding
DENSE_HIGHS = 9


@dataclass(frozen=True)
class Shape:
    """What a series did: its kind, how many rounds made a new high, and its net change."""

    kind: ShapeKind
    rounds: int
    highs: int
    net: int
    #: rounds since the last new high (the flat tail), and the length it needed
    tail: int = 0
    needed: int = 0

    @property
    def leaks(self) -> bool:
        """True for the shapes of a leak: steady growth, or steps that keep coming."""
        return self.kind in ("steady", "steps")

    def describe(self, what: str) -> str:
        """One phrase for the report: what the series did, in words."""
        if self.kind == "steady":
            return f"{what} grew on every one of {self.rounds} measured rounds (+{self.net})"
        if self.kind == "steps":
            return (
                f"{what} grew in steps that kept coming: {self.highs} new highs in "
                f"{self.rounds} rounds, +{self.net} (an intermittent leak)"
            )
        if self.kind == "levelled":
            return (
                f"{what} grew for {self.rounds - self.tail} rounds, then stayed flat for "
                f"{self.tail}: levelled off (a bounded structure filling)"
            )
        if self.kind == "unclear":
            return f"{what} rose {self.highs} times in {self.rounds} rounds, then slowed down"
        return f"{what} did not grow"


def _high_water(deltas: Sequence[int], min_growth: int) -> list[int]:
    """The 0-based rounds where the running total first reaches a new high by min_growth."""
    highs: list[int] = []
    total = 0
    mark = 0
    for k, d in enumerate(deltas):
        total += d
        if total >= mark + min_growth:
            highs.append(k)
            mark = total
    return highs


def high_increments(deltas: Sequence[int], min_growth: int) -> list[int]:
    """How much each new high added over the one before it (the first over the baseline)."""
    out: list[int] = []
    total = 0
    mark = 0
    for d in deltas:
        total += d
        if total >= mark + min_growth:
            out.append(total - mark)
            mark = total
    return out


def series_shape(
    deltas: Sequence[int], *, min_growth: int, rounds: int, final: bool = True
) -> Shape:
    """The shape of ``deltas`` (one per measured round); ``rounds`` is the planned minimum.

    With ``final`` False a series that could still go either way is ``unclear`` (the
    driver measures more); with ``final`` True it is decided from the whole series: steps
    still coming in the second half at no less than half the rate of the first (and in
    every quarter) are a leak, anything slowing down is not.
    """
    n = len(deltas)
    net = sum(deltas)
    highs = _high_water(deltas, min_growth)
    if not highs:
        return Shape("flat", n, 0, net)
    if len(highs) == n:
        return Shape("steady" if final else "unclear", n, n, net)
    # the flat tail a bounded structure shows once full must be long compared with the
    # gaps between its steps: a leak every 6th call is flat for 5 rounds at a time
    gaps = [highs[0] + 1, *(b - a for a, b in pairwise(highs))]
    needed = max(rounds, 2 * max(gaps))
    tail = n - 1 - highs[-1]
    if tail >= needed and sum(deltas[highs[-1] + 1 :]) < min_growth:
        return Shape("levelled", n, len(highs), net, tail, needed)
    if not final:
        return Shape("unclear", n, len(highs), net, tail, needed)
    if n >= MIN_SERIES_FOR_STEPS:
        half = n // 2
        first = sum(deltas[:half])
        second = sum(deltas[half:])
        quarter = n / 4
        every_quarter = all(
            sum(deltas[int(q * quarter) : int((q + 1) * quarter)]) >= min_growth for q in range(4)
        )
        # a leak keeps adding: the second half grows by a good part of what the first
        # did (a buffer past malloc's mmap threshold grows in pages, fewer steps but
        # as many bytes); a structure filling up, or a drift, slows down to nothing.
        # New highs on nearly every round are a leak whatever the sums say: one big
        # early step (glibc taking a chunk for its own) must not make 32 B a round on
        # 59 rounds of 60 read as slowing down
        dense = DENSE_HIGHS * n <= len(highs) * 10
        adding = 3 * second >= first and second >= 2 * min_growth
        if len(highs) >= 4 and every_quarter and (adding or dense):
            return Shape("steps", n, len(highs), net, tail, needed)
    return Shape("unclear", n, len(highs), net, tail, needed)
