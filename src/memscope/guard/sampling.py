"""Bounded sampling: a uniform sample of a stream without loading the stream.

The "load every row, then subsample" pattern (``random.sample(list(rows), k)``)
holds the whole data set at its peak. A reservoir holds ``k`` items whatever the
stream's length; ``sample_by`` keeps one reservoir per label, with a cap on the
number of labels so that an unbounded label set cannot grow it either.

The reservoir uses Li's "Algorithm L": after the first ``k`` items it draws how
many items to skip, so random numbers are drawn O(k log(n/k)) times, not n times.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, Literal, TypeVar

from .._base.validate import check_callable, check_choice, check_int

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

Seed = int | random.Random | None

DEFAULT_MAX_KEYS = 10_000
DROPPED_KEYS_SAMPLE = 10


def _rng(seed: Seed) -> random.Random:
    if seed is None:
        return random.Random()
    if isinstance(seed, random.Random):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return random.Random(seed)
    raise TypeError(f"seed must be an int, a random.Random or None, got {type(seed).__name__}")


class Reservoir(Generic[T]):
    """A uniform random sample of at most ``k`` of the items added so far (not thread-safe).

    Memory is O(k) whatever the number of items added; ``seen`` counts them all.
    ``items()`` returns the sample in the order the items arrived.
    """

    __slots__ = ("__weakref__", "_next", "_rng", "_slots", "_w", "k", "seen")

    def __init__(self, k: int, seed: Seed = None) -> None:
        self.k: int = check_int("k", k, low=0)
        self.seen = 0
        self._rng = _rng(seed)
        # (arrival index, item): the index restores stream order at the end
        self._slots: list[tuple[int, T]] = []
        self._w = 1.0
        self._next = 0  # arrival index of the next item that enters the reservoir

    def __len__(self) -> int:
        return len(self._slots)

    def __repr__(self) -> str:
        return f"<Reservoir k={self.k} len={len(self._slots)} seen={self.seen}>"

    def _advance_from(self, index: int) -> None:
        # Algorithm L: W shrinks by U^(1/k) at each acceptance; the gap to the next
        # accepted arrival is geometric with parameter W. 1 - random() lies in (0, 1].
        rng = self._rng
        self._w *= math.exp(math.log(1.0 - rng.random()) / self.k)
        gap = math.floor(math.log(1.0 - rng.random()) / math.log1p(-self._w))
        self._next = index + gap + 1

    def add(self, item: T) -> None:
        """Offer one item to the sample."""
        index = self.seen
        self.seen = index + 1
        if self.k == 0:
            return
        if index < self.k:
            self._slots.append((index, item))
            if index + 1 == self.k:
                self._w = 1.0
                self._advance_from(index)
            return
        if index == self._next:
            self._slots[self._rng.randrange(self.k)] = (index, item)
            self._advance_from(index)

    def extend(self, iterable: Iterable[T]) -> None:
        """Offer every item of ``iterable``, skipping ahead without looking at rejected ones."""
        it = iter(iterable)
        if self.k == 0:
            self.seen += sum(1 for _ in it)
            return
        while len(self._slots) < self.k:
            try:
                item = next(it)
            except StopIteration:
                return
            self.add(item)
        while True:
            skip = self._next - self.seen
            if skip > 0:
                # consume the rejected items without binding them
                skipped = sum(1 for _ in itertools.islice(it, skip))
                self.seen += skipped
                if skipped < skip:
                    return
            try:
                item = next(it)
            except StopIteration:
                return
            self.add(item)

    def items(self) -> list[T]:
        """The sample, in arrival order."""
        return [item for _, item in sorted(self._slots, key=lambda pair: pair[0])]

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def memscope_stats(self) -> dict[str, Any]:
        """Statistics shown in memscope snapshots when the reservoir is tracked."""
        size = sys.getsizeof(self._slots) + sum(
            sys.getsizeof(pair) + sys.getsizeof(pair[1]) for pair in self._slots
        )
        return {"k": self.k, "seen_total": self.seen, "size_bytes": size}


def sample(iterable: Iterable[T], k: int, seed: Seed = None) -> list[T]:
    """A uniform random sample of ``k`` items of ``iterable`` (all if fewer) in O(k) memory.

    The items come back in the order they arrived; ``seed`` (int or random.Random)
    makes the draw reproducible.
    """
    reservoir: Reservoir[T] = Reservoir(k, seed)
    reservoir.extend(iterable)
    return reservoir.items()


class Samples(dict[K, list[T]]):
    """``sample_by`` result: label -> sampled items, plus how many items each label had."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[K, int] = {}
        # on_overflow="drop": how many items were skipped, and a few of the labels, to debug
        self.dropped_items_total = 0
        self.dropped_keys_sample: list[K] = []


def sample_by(
    iterable: Iterable[T],
    key: Callable[[T], K],
    k_per_key: int,
    *,
    seed: Seed = None,
    max_keys: int = DEFAULT_MAX_KEYS,
    on_overflow: Literal["raise", "drop"] = "raise",
) -> Samples[K, T]:
    """Up to ``k_per_key`` uniform samples per label ``key(item)``, in O(k_per_key * max_keys).

    ``max_keys`` caps the number of distinct labels. A new label past the cap
    raises ValueError (``on_overflow="raise"``) or is counted and skipped
    (``on_overflow="drop"``: see ``dropped_items_total`` / ``dropped_keys_sample``).
    The result maps each label to its sample (arrival order); ``.seen`` holds how
    many items each label had, to reweight per-label samples into frequencies.
    """
    check_callable("key", key)  # item -> label
    check_int("k_per_key", k_per_key, low=0)
    check_int("max_keys", max_keys, low=1)
    check_choice("on_overflow", on_overflow, ("raise", "drop"))
    rng = _rng(seed)
    reservoirs: dict[K, Reservoir[T]] = {}
    dropped_keys: list[K] = []
    dropped_items = 0
    for item in iterable:
        label = key(item)
        reservoir = reservoirs.get(label)
        if reservoir is None:
            if len(reservoirs) >= max_keys:
                if on_overflow == "raise":
                    raise ValueError(
                        f"sample_by: more than max_keys={max_keys} distinct labels "
                        f"(the next one is {label!r}); raise max_keys, or pass "
                        "on_overflow='drop' to skip items with new labels"
                    )
                dropped_items += 1
                # a few examples say what the runaway labels look like; more would be a leak
                if len(dropped_keys) < DROPPED_KEYS_SAMPLE and label not in dropped_keys:
                    dropped_keys.append(label)
                continue
            # every reservoir shares one generator: one seed reproduces the whole draw
            reservoir = reservoirs[label] = Reservoir(k_per_key, rng)
        reservoir.add(item)
    out: Samples[K, T] = Samples()
    for label, reservoir in reservoirs.items():
        out[label] = reservoir.items()
        out.seen[label] = reservoir.seen
    out.dropped_keys_sample = dropped_keys
    out.dropped_items_total = dropped_items
    return out
