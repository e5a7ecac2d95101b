"""Whatever a collector, a tracked object or a plug-in does wrong stays in its own row or
section: snapshot(), save(), clear_caches() and a Monitor's thread go on."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

import memscope
from memscope import Section


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class _Plugin:
    cost = "cheap"

    def __init__(self, name: str, result: Any) -> None:
        self.name = name
        self._result = result

    def collect(self) -> Any:
        if callable(self._result):
            return self._result()
        return self._result


class OddSection(Section):
    name = "odd_section"


@pytest.mark.parametrize(
    "payload",
    [{"x": math.nan}, {"x": object()}, {"x": math.inf}],
    ids=["nan", "object", "inf"],
)
def test_a_returned_section_is_normalised_like_a_mapping(
    payload: dict[str, Any], tmp_path: Path
) -> None:
    memscope.register_collector(_Plugin("odd_section", OddSection(payload)))  # type: ignore[arg-type]
    try:
        snap = memscope.snapshot(collectors=["odd_section", "gc"])
        assert "odd_section" in snap.errors and "gc" in snap.sections
        memscope.save(snap, tmp_path / "s.jsonl")  # the host can always save what it took
        assert memscope.load(tmp_path / "s.jsonl")[0] == snap
    finally:
        memscope.unregister_collector("odd_section")


def test_a_good_returned_section_keeps_its_type() -> None:
    memscope.register_collector(_Plugin("odd_section", OddSection({"k": (1, 2)})))  # type: ignore[arg-type]
    try:
        section = memscope.snapshot(collectors=["odd_section"])["odd_section"]
        assert type(section) is OddSection
        assert section["k"] == [1, 2]  # JSON-normalised: what it will load back
    finally:
        memscope.unregister_collector("odd_section")


@pytest.mark.parametrize("error", [SystemExit(3), GeneratorExit()], ids=["exit", "genexit"])
def test_a_collector_that_exits_does_not_end_the_host(error: BaseException) -> None:
    def collect() -> Any:
        raise error

    memscope.register_collector(_Plugin("exiter", collect))  # type: ignore[arg-type]
    try:
        snap = memscope.snapshot(collectors=["exiter", "gc"])
        assert snap.errors["exiter"].startswith(type(error).__name__)
        monitor = memscope.Monitor(interval=0.01, collectors=["exiter", "gc"], label="exiting")
        monitor.start()
        try:
            wait_for(lambda: len(monitor) >= 3)  # the thread went on
        finally:
            assert monitor.stop(5.0)
    finally:
        memscope.unregister_collector("exiter")


class NaNStats:
    def __len__(self) -> int:
        return 1

    def memscope_stats(self) -> dict[str, Any]:
        return {"ratio": math.nan, "hits": 3, "size_bytes": math.inf}


class BadSizeof:
    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Any:
        return iter([1, 2])

    def __sizeof__(self) -> int:
        raise ValueError("no size")


class BadGetattr:
    def __len__(self) -> int:
        return 3

    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


class Fine:
    def __len__(self) -> int:
        return 4


def test_one_bad_tracked_object_costs_its_row_only(tmp_path: Path) -> None:
    keep = [NaNStats(), BadSizeof(), BadGetattr(), Fine()]
    for i, obj in enumerate(keep):
        memscope.track(obj, name=f"contain-{i}")
    try:
        snap = memscope.snapshot(collectors=["tracked"])
        assert "tracked" not in snap.errors
        rows = {r["name"]: r for r in snap["tracked"]["objects"]}
        assert {f"contain-{i}" for i in range(4)} <= set(rows)
        assert rows["contain-0"]["stats"] == {"hits": 3}  # NaN and inf left out
        assert rows["contain-3"]["len"] == 4
        memscope.save(snap, tmp_path / "t.jsonl")
        assert memscope.load(tmp_path / "t.jsonl")[0] == snap
    finally:
        for obj in keep:
            memscope.untrack(obj)


class HugeLen(dict):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise OverflowError("cannot fit 'int' into an index-sized integer")


def test_clear_caches_goes_past_a_cache_whose_len_raises() -> None:
    first = HugeLen(a=1)
    second = {"b": 2}
    holder = type("Holder", (), {})()
    holder.second = second
    memscope.track(first, name="contain-huge", clear=True)
    memscope.track(second, name="contain-plain", clear=True, owner=holder)
    try:
        cleared = memscope.clear_caches()
        assert second == {} and dict.__len__(first) == 0
        assert cleared.get("contain-plain") == 1
    finally:
        memscope.untrack(first)
        memscope.untrack(second)
    del holder
