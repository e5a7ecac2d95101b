"""The shape rule on synthetic series: intermittent leaks vs bounded structures filling."""

from __future__ import annotations

import pytest

from memscope.testing._options import CheckOptions
from memscope.testing._readings import Readings
from memscope.testing._shape import series_shape
from memscope.testing._verdict import verdict, wants_more

ROUNDS = 5
BOUND = 60
WARMUP = 3


def every(period: int, n: int = BOUND, size: int = 1) -> list[int]:
    """One step of ``size`` on every ``period``-th round."""
    return [size if (k + 1) % period == 0 else 0 for k in range(n)]


def fill(entries: int, n: int = BOUND, per_call: int = 1, warmup: int = WARMUP) -> list[int]:
    """A structure filled ``per_call`` a call up to ``entries``; the warmup did the first."""
    left = max(0, entries - warmup * per_call)
    out = []
    for _ in range(n):
        step = min(per_call, left)
        left -= step
        out.append(step)
    return out


def shape(deltas: list[int], final: bool = True) -> str:
    return series_shape(deltas, min_growth=1, rounds=ROUNDS, final=final).kind


@pytest.mark.parametrize("period", [2, 3, 4, 5, 7, 10])
def test_a_leak_every_nth_call_is_steps_at_the_bound(period: int) -> None:
    series = every(period)
    assert shape(series) == "steps"
    # before the bound it is unclear: the driver measures on
    assert shape(series[:30], final=False) == "unclear"


@pytest.mark.parametrize("size", [1, 3, 64])
def test_steps_with_noise_between_them_are_still_a_leak(size: int) -> None:
    series = [
        d - (1 if k % 4 == 1 else 0) + (1 if k % 4 == 2 else 0)
        for k, d in enumerate(every(3, size=size))
    ]
    assert shape(series) == "steps"


def test_growth_on_every_round_is_steady_and_unclear_until_the_bound() -> None:
    assert shape([1] * BOUND) == "steady"
    assert shape([1] * 5) == "steady"  # a series cut short is judged as it stands
    assert shape([1] * 20, final=False) == "unclear"


@pytest.mark.parametrize("entries", [10, 20, 30, 50])
def test_a_cache_filled_one_entry_a_call_levels_off(entries: int) -> None:
    series = fill(entries, per_call=1)
    assert shape(series) == "levelled"
    # it is levelled as soon as the flat tail is long enough, well before the bound
    done = next(n for n in range(ROUNDS, BOUND + 1) if shape(series[:n], final=False) != "unclear")
    assert done <= entries - WARMUP + ROUNDS + 1
    assert shape(series[:done], final=False) == "levelled"


@pytest.mark.parametrize("per_call", [2, 4, 40])
def test_a_structure_filled_by_bigger_steps_levels_off(per_call: int) -> None:
    assert shape(fill(50 * per_call, per_call=per_call)) == "levelled"


def test_a_pool_growing_in_doubling_steps_to_its_cap_is_not_a_leak() -> None:
    series = [0] * BOUND
    for k in (0, 1, 3, 7, 15):  # capacity doubles: steps ever further apart, then none
        series[k] = 8
    assert not series_shape(series, min_growth=1, rounds=ROUNDS).leaks


@pytest.mark.parametrize("pattern", [[1, -1], [2, -1, -1], [1, 0, -1, 0], [3, -3, 1, -1]])
def test_ups_and_downs_are_never_a_leak(pattern: list[int]) -> None:
    series = (pattern * BOUND)[:BOUND]
    assert not series_shape(series, min_growth=1, rounds=ROUNDS).leaks


def test_flat_is_flat_and_min_growth_sets_the_step() -> None:
    assert shape([0] * ROUNDS) == "flat"
    assert shape([-1, 0, -2, 0, 0]) == "flat"
    # min_growth is the least a new high must add to the total: +1 every 2nd round is a
    # step of 2 every 4th round, and no step at all at 100
    assert series_shape(every(2), min_growth=2, rounds=ROUNDS).highs == 15
    assert series_shape(every(2), min_growth=100, rounds=ROUNDS).kind == "flat"


def test_new_highs_on_nearly_every_round_are_a_leak_despite_big_early_steps() -> None:
    # CPython 3.11.7's tracemalloc.start()/stop() keeps 32 B of C memory a cycle; in one
    # more-itertools run two chunks glibc took early (+624, +1424) made the first half's
    # sum three times the second's, and 59 new highs in 60 rounds read as slowing down
    series = [32] * 13 + [624] + [32] * 11 + [1424, 0] + [32] * 33
    assert series_shape(series, min_growth=1, rounds=ROUNDS).kind == "steps"
    # the same big early steps before a series that stops are still no leak
    assert not series_shape([32] * 13 + [624, 1424] + [0] * 45, min_growth=1, rounds=5).leaks


def test_steps_that_die_out_are_not_a_leak() -> None:
    series = every(2, n=30) + [0] * 30  # grew for half the series, then stopped
    assert not series_shape(series, min_growth=1, rounds=ROUNDS).leaks


def test_the_description_names_the_shape() -> None:
    s = series_shape(every(3), min_growth=1, rounds=ROUNDS)
    assert "in steps" in s.describe("allocated blocks") and "20 new highs" in s.describe("x")
    s = series_shape(fill(30), min_growth=1, rounds=ROUNDS)
    assert "levelled off" in s.describe("allocated blocks")


def readings_of(blocks: list[int]) -> Readings:
    n = len(blocks)
    after = [5000] * (WARMUP + n + 1)
    before = [5000] * (WARMUP + 1) + [5000 + d for d in blocks]
    flat = [0] * (WARMUP + n + 1)
    return Readings(
        warmup=WARMUP,
        rounds=n,
        blocks_before=before,
        blocks_after=after,
        tasks=flat,
        fds=[7] * (WARMUP + n + 1),
        threads=[1] * (WARMUP + n + 1),
    )


def test_the_verdict_reads_the_shape_of_the_whole_series() -> None:
    opts = CheckOptions.build(warmup=WARMUP, rounds=ROUNDS)
    leak = verdict(readings_of(every(4)), opts, label="x", seconds=0.0)
    assert leak.leaked
    assert leak.failures[0].startswith("allocated blocks grew in steps that kept coming")
    cache = verdict(readings_of(fill(50)), opts, label="x", seconds=0.0)
    assert not cache.leaked
    assert "levelled off" in cache.noise[0]
    # and the same series, cut at the planned rounds, ask for more
    assert wants_more(readings_of(every(4)[:ROUNDS]), opts, BOUND)
    assert wants_more(readings_of(fill(50)[:ROUNDS]), opts, BOUND)
    assert not wants_more(readings_of([0] * ROUNDS), opts, BOUND)
    assert not wants_more(readings_of(every(4)), opts, BOUND)  # at the bound
    assert not wants_more(readings_of([1] * ROUNDS), opts, ROUNDS)  # bound = rounds
