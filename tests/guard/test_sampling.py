"""sample(), sample_by() and Reservoir: uniform samples of streams in bounded memory."""

from __future__ import annotations

import collections
import random
from collections.abc import Iterator
from typing import Any

import pytest

import memscope
from memscope.guard.sampling import Reservoir, Samples, sample, sample_by


def rows(n: int, width: int = 1024) -> Iterator[bytes]:
    """A stream of distinct rows, like lines of a training file."""
    for i in range(n):
        yield i.to_bytes(8, "little") * (width // 8)


class Rows(list[bytes]):
    """A list that can be tracked weakly."""


def _frequencies(draw: Any, n: int, trials: int) -> list[int]:
    counts: collections.Counter[int] = collections.Counter()
    for seed in range(trials):
        counts.update(draw(seed))
    return [counts[i] for i in range(n)]


def test_sample_is_uniform() -> None:
    n, k, trials = 30, 5, 6000
    freq = _frequencies(lambda s: sample(range(n), k, seed=s), n, trials)
    expected = trials * k / n  # 1000 per item
    # chi-square with 29 degrees of freedom: 99.9th percentile is about 58
    chi2 = sum((f - expected) ** 2 / expected for f in freq)
    assert chi2 < 58, freq


def test_add_one_by_one_is_uniform_and_matches_extend() -> None:
    n, k, trials = 30, 5, 6000

    def one_by_one(seed: int) -> list[int]:
        r: Reservoir[int] = Reservoir(k, seed)
        for i in range(n):
            r.add(i)
        return r.items()

    freq = _frequencies(one_by_one, n, trials)
    expected = trials * k / n
    assert sum((f - expected) ** 2 / expected for f in freq) < 58
    for seed in range(50):
        assert one_by_one(seed) == sample(range(n), k, seed=seed)


def test_sample_keeps_arrival_order_and_is_reproducible() -> None:
    got = sample(iter(range(100_000)), 50, seed=7)
    assert got == sorted(got)
    assert len(set(got)) == 50
    assert got == sample(range(100_000), 50, seed=7)
    assert got == sample(range(100_000), 50, seed=random.Random(7))
    assert got != sample(range(100_000), 50, seed=8)


def test_short_streams_and_zero() -> None:
    assert sample(iter([3, 1, 2]), 10) == [3, 1, 2]
    assert sample([], 3) == []
    assert sample(range(10), 0) == []
    r: Reservoir[int] = Reservoir(0)
    r.extend(range(7))
    assert len(r) == 0 and r.seen == 7


def test_reservoir_counts_everything_it_was_offered() -> None:
    r: Reservoir[int] = Reservoir(3, seed=1)
    r.extend(range(1000))
    r.extend(iter(range(1000, 1500)))
    assert r.seen == 1500
    assert len(r) == 3
    assert all(0 <= x < 1500 for x in r)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": -1}, ValueError, "k must be an int >= 0"),
        ({"k": 2.0}, TypeError, "k must be an int"),
        ({"k": True}, TypeError, "k must be an int"),
        ({"k": 2, "seed": "abc"}, TypeError, "seed must be"),
    ],
)
def test_sample_rejects_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sample(range(5), **kwargs)


def test_sample_by_gives_each_label_its_quota_and_counts() -> None:
    data = [(label, i) for i in range(1000) for label in ("cat", "dog", "rare")][:2001]
    data.append(("rare", -1))
    got = sample_by(data, key=lambda row: row[0], k_per_key=10, seed=3)
    assert isinstance(got, Samples)
    assert set(got) == {"cat", "dog", "rare"}
    assert all(len(v) == 10 for v in got.values())
    assert all(row[0] == label for label, v in got.items() for row in v)
    assert got.seen == {"cat": 667, "dog": 667, "rare": 668}
    assert got.dropped_items_total == 0 and got.dropped_keys_sample == []
    assert sample_by(data, key=lambda row: row[0], k_per_key=10, seed=3) == got


def test_sample_by_caps_the_number_of_labels() -> None:
    with pytest.raises(ValueError, match=r"more than max_keys=5 distinct labels .* 5"):
        sample_by(range(100), key=lambda x: x, k_per_key=1, max_keys=5)
    got = sample_by(range(100), key=lambda x: x % 20, k_per_key=2, max_keys=5, on_overflow="drop")
    assert set(got) == {0, 1, 2, 3, 4}
    assert got.dropped_keys_sample == list(range(5, 15))
    assert got.dropped_items_total == 75


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"key": 3}, TypeError, "key must be callable"),
        ({"k_per_key": -2}, ValueError, "k_per_key must be an int >= 0"),
        ({"k_per_key": 1.5}, TypeError, "k_per_key must be an int"),
        ({"max_keys": 0}, ValueError, "max_keys must be an int >= 1"),
        ({"on_overflow": "ignore"}, ValueError, "on_overflow must be one of 'raise', 'drop'"),
    ],
)
def test_sample_by_rejects_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    args: dict[str, Any] = {"key": lambda x: x, "k_per_key": 1, **kwargs}
    with pytest.raises(error, match=match):
        sample_by(range(3), **args)


def test_load_then_subsample_grows_memory_reservoir_does_not() -> None:
    """Proof: the naive pattern holds every row; the reservoir holds k (tracked section)."""
    n, k = 20_000, 100
    naive = Rows()
    reservoir: Reservoir[bytes] = Reservoir(k, seed=1)
    memscope.track(naive, name="naive_rows")
    memscope.track(reservoir, name="reservoir_rows")
    try:
        before = memscope.snapshot(label="before", collectors=["tracked"])
        naive.extend(rows(n))  # rows = list(load_rows()); random.sample(rows, k)
        naive_pick = random.Random(1).sample(naive, k)
        reservoir.extend(rows(n))
        after = memscope.snapshot(label="after", collectors=["tracked"])
    finally:
        memscope.untrack(naive)
        memscope.untrack(reservoir)
    diff = memscope.compare(before, after)
    naive_growth = diff.delta("tracked", "objects[naive_rows].size_bytes")
    bounded_growth = diff.delta("tracked", "objects[reservoir_rows].size_bytes")
    assert len(naive_pick) == len(reservoir.items()) == k
    assert naive_growth > n * 1024
    assert bounded_growth < k * 1200
    assert naive_growth > 100 * bounded_growth


def test_sample_by_memory_is_bounded_by_quota_times_labels() -> None:
    """Many rows, few labels: the samples hold k_per_key * labels rows whatever n is."""
    got = sample_by(rows(50_000, 64), key=lambda r: r[0] % 4, k_per_key=25, seed=2)
    assert sum(len(v) for v in got.values()) == 100
    assert sum(got.seen.values()) == 50_000
