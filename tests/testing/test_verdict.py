"""The no-growth verdict on synthetic readings: each leak rule, its noise, and its purity."""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pytest

from memscope.testing._options import CheckOptions
from memscope.testing._readings import Readings, TypeReadings
from memscope.testing._report import AllocationSite
from memscope.testing._verdict import verdict

WARMUP = 2
ROUNDS = 5
FLAT = [0] * ROUNDS


def series(deltas: Sequence[int], *, warmup: int = WARMUP, start: int = 100) -> list[int]:
    """Readings 0..warmup+rounds: flat through the warmup, then moving by ``deltas``."""
    out = [start] * (warmup + 1)
    for d in deltas:
        out.append(out[-1] + d)
    return out


def readings(
    *,
    blocks: Sequence[int] = FLAT,
    tasks: Sequence[int] = FLAT,
    fds: Sequence[int] | None = FLAT,
    threads: Sequence[int] | None = FLAT,
    traced: Sequence[int] | None = None,
    types: Sequence[TypeReadings] = (),
    warmup: int = WARMUP,
    census_error: str | None = None,
    sites: Sequence[AllocationSite] = (),
) -> Readings:
    # the probe's bookkeeping ends every reading at the same count; a round's delta is the
    # next reading's first count minus that
    after = [5000] * (warmup + len(blocks) + 1)
    before = [5000] * (warmup + 1) + [5000 + d for d in blocks]
    return Readings(
        warmup=warmup,
        rounds=len(blocks),
        blocks_before=before,
        blocks_after=after,
        tasks=series(tasks, warmup=warmup, start=0),
        fds=None if fds is None else series(fds, warmup=warmup, start=7),
        threads=None if threads is None else series(threads, warmup=warmup, start=1),
        traced=None if traced is None else series(traced, warmup=warmup, start=10_000),
        types=types,
        census=True,
        census_error=census_error,
        sites=list(sites),
    )


def grows(name: str, deltas: Sequence[int], sizes: Sequence[int] | None = None) -> TypeReadings:
    return TypeReadings(
        type=name,
        count=1000 + sum(deltas),
        deltas=list(deltas),
        size_deltas=list(sizes if sizes is not None else [16 * d for d in deltas]),
        size_bytes_delta=sum(sizes if sizes is not None else [16 * d for d in deltas]),
    )


def judge(r: Readings, **options: Any) -> Any:
    opts = CheckOptions.build(warmup=r.warmup, rounds=r.rounds, **options)
    return verdict(r, opts, label="synthetic", seconds=0.5)


def test_flat_readings_are_no_leak() -> None:
    report = judge(readings())
    assert not report.leaked
    assert report.failures == [] and report.noise == []
    assert report.deltas == {
        "blocks": FLAT,
        "fds": FLAT,
        "threads": FLAT,
        "tasks": FLAT,
    }
    assert report.label == "synthetic" and report.seconds == 0.5
    assert (report.warmup, report.rounds) == (WARMUP, ROUNDS)


def test_blocks_growing_every_round_are_a_leak() -> None:
    report = judge(readings(blocks=[1, 2, 1, 3, 1]))
    assert report.leaked
    assert report.deltas["blocks"] == [1, 2, 1, 3, 1]
    assert report.failures == ["allocated blocks grew on every measured round (+8 in 5 rounds)"]


def test_blocks_growing_on_some_rounds_are_noise() -> None:
    report = judge(readings(blocks=[1, 0, 4, 1, 1]))
    assert not report.leaked
    assert report.noise == ["allocated blocks: +1 +0 +4 +1 +1"]


def test_min_growth_raises_the_bar_for_every_round() -> None:
    r = readings(blocks=[1, 1, 1, 1, 1])
    assert judge(r).leaked
    assert not judge(r, min_growth=2).leaked


def test_a_type_growing_every_round_is_a_leak_and_named() -> None:
    r = readings(
        blocks=[1, 1, 1, 1, 1],
        types=[grows("dict", [1, 1, 1, 1, 1]), grows("Session", [2, 2, 2, 2, 2])],
    )
    report = judge(r)
    assert report.leaked
    # largest total growth first
    assert [row.type for row in report.grew] == ["Session", "dict"]
    assert report.grew[1].deltas == [1, 1, 1, 1, 1] and report.grew[1].count == 1005
    assert report.grew[1].unit == "objects"
    assert "2 type(s) grew on every measured round: Session, dict" in report.failures


def test_a_type_growing_on_some_rounds_is_noise() -> None:
    report = judge(readings(types=[grows("object", [0, 10, 0, 0, 0])]))
    assert not report.leaked and report.grew == []
    assert report.noise == ["object: +0 +10 +0 +0 +0"]


def test_noise_is_bounded_by_top() -> None:
    types = [grows(f"T{i}", [0, i + 1, 0, 0, 0]) for i in range(30)]
    report = judge(readings(types=types), top=3)
    assert report.noise == ["T29: +0 +30 +0 +0 +0", "T28: +0 +29 +0 +0 +0", "T27: +0 +28 +0 +0 +0"]


def test_fds_over_the_allowance_are_a_leak_at_any_round() -> None:
    r = readings(fds=[0, 1, 0, 0, 0])
    report = judge(r)
    assert report.leaked
    assert report.failures == ["open file descriptors grew by 1 over 5 rounds (allowed 0)"]
    within = judge(r, allow_fds=1)
    assert not within.leaked and within.noise == ["open file descriptors: +0 +1 +0 +0 +0"]


def test_unknown_fds_are_left_out_not_guessed() -> None:
    report = judge(readings(fds=None))
    assert "fds" not in report.deltas and not report.leaked


def test_threads_over_the_allowance_are_a_leak() -> None:
    r = readings(threads=[1, 0, 1, 0, 0])
    assert judge(r).failures == ["threads grew by 2 over 5 rounds (allowed 0)"]
    assert not judge(r, allow_threads=2).leaked
    report = judge(readings(threads=None))
    assert "threads" not in report.deltas


def test_tasks_pending_more_every_round_are_a_leak_and_on_some_rounds_noise() -> None:
    assert judge(readings(tasks=[1, 1, 1, 1, 1])).failures == [
        "pending asyncio tasks grew on every round (+5)"
    ]
    report = judge(readings(tasks=[1, 0, 0, 0, 0]))
    assert not report.leaked and report.noise == ["asyncio tasks: +1 +0 +0 +0 +0"]


def test_bytes_growing_in_place_are_a_leak() -> None:
    buffer = grows("bytearray", FLAT, sizes=[400, 400, 512, 400, 400])
    report = judge(readings(types=[buffer]))
    assert report.leaked and report.grew == []
    assert [row.type for row in report.grew_bytes] == ["bytearray"]
    assert report.grew_bytes[0].unit == "bytes"
    assert report.grew_bytes[0].deltas == [400, 400, 512, 400, 400]
    assert "grew in bytes on every measured round" in report.failures[0]
    assert not judge(readings(types=[buffer]), min_growth_bytes=401).leaked


def test_bytes_growing_in_place_need_three_rounds() -> None:
    buffer = grows("bytearray", [0, 0], sizes=[400, 400])
    report = judge(
        readings(blocks=[0, 0], tasks=[0, 0], fds=[0, 0], threads=[0, 0], types=[buffer])
    )
    assert not report.leaked and report.grew_bytes == []


def test_ignored_types_explain_block_growth() -> None:
    r = readings(blocks=[1, 1, 1, 1, 1], types=[grows("app.CacheEntry", [1, 1, 1, 1, 1])])
    assert judge(r).leaked
    report = judge(r, ignore="app.*")
    assert not report.leaked
    assert [row.type for row in report.ignored] == ["app.CacheEntry"]
    assert report.noise[0] == "allocated blocks grew every round, explained by ignored types"
    assert not judge(r, ignore=lambda name: name.endswith("Entry")).leaked


def test_ignored_types_do_not_explain_growth_of_other_types() -> None:
    r = readings(
        blocks=[2, 2, 2, 2, 2],
        types=[grows("app.CacheEntry", [1, 1, 1, 1, 1]), grows("dict", [1, 1, 1, 1, 1])],
    )
    report = judge(r, ignore=["app.*"])
    assert report.leaked
    assert [row.type for row in report.grew] == ["dict"]
    assert any(f.startswith("allocated blocks grew") for f in report.failures)


def test_a_census_failure_is_noise_and_the_census_marked_off() -> None:
    report = judge(readings(census_error="MemoryError: no"))
    assert not report.census and not report.leaked
    assert report.noise == ["census unavailable: MemoryError: no"]


def test_traced_readings_give_traced_bytes_and_sites() -> None:
    site = AllocationSite(filename="app.py", lineno=3, size_bytes_delta=160, count_delta=5)
    report = judge(readings(blocks=[1] * 5, traced=[32] * 5, sites=[site]))
    assert report.tracing and report.deltas["traced_bytes"] == [32] * 5
    assert report.sites == [site]
    assert not judge(readings()).tracing


def test_only_measured_rounds_count() -> None:
    r = readings(blocks=FLAT)
    # a warmup reading that moved is what warmup is for: it never reaches the verdict
    moved = Readings(**{**r.__dict__, "tasks": [0, 9, 9, 9, 9, 9, 9, 9]})
    report = judge(moved)
    assert report.deltas["tasks"] == FLAT and report.noise == []


def test_the_verdict_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    r = readings(blocks=[1] * 5, types=[grows("dict", [1] * 5)], traced=[8] * 5)

    def forbidden(*args: object, **kwargs: object) -> Any:
        raise AssertionError("the verdict must not read the process")

    for owner, name in (
        (gc, "collect"),
        (sys, "getallocatedblocks"),
        (time, "perf_counter"),
        (time, "time"),
        (time, "monotonic"),
        (tracemalloc, "take_snapshot"),
        (tracemalloc, "get_traced_memory"),
    ):
        monkeypatch.setattr(owner, name, forbidden)
    first = judge(r).to_dict()
    monkeypatch.undo()
    assert first == judge(r).to_dict()
    assert first["leaked"] and r.types[0].deltas == [1] * 5  # the readings are untouched
