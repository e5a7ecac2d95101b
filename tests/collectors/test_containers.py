"""containers and large_objects: the biggest things on the heap, and who holds them."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest

import memscope
from memscope.collectors.containers import ContainersCollector
from memscope.collectors.large import LargeObjectsCollector

_model_cache: dict[str, bytes] = {}
_blob: bytes = b""


class ModelStore:
    """A class whose instance holds a cache that grows."""

    def __init__(self) -> None:
        self.cache: dict[str, int] = {}


store = ModelStore()


def _rows(section: Any) -> list[dict[str, Any]]:
    return list(section["top"])


def test_names_a_module_level_cache() -> None:
    _model_cache.update((f"model-{i}", b"x") for i in range(60_000))
    try:
        rows = _rows(memscope.snapshot(collectors=["containers"])["containers"])
        row = next(r for r in rows if r["length"] == 60_000)
        assert row["type"] == "dict"
        assert row["where"] == f"module {__name__} attribute _model_cache"
        assert row["summary"].startswith("dict of 60,000 items; keys like 'model-0'")
    finally:
        _model_cache.clear()


def test_names_an_instance_attribute_and_where_the_instance_lives() -> None:
    store.cache.update((f"k{i}", i) for i in range(55_000))
    try:
        rows = _rows(memscope.snapshot(collectors=["containers"])["containers"])
        row = next(r for r in rows if r["length"] == 55_000)
        assert row["where"].startswith(f"instance of {__name__}.ModelStore attribute cache")
        assert f"module {__name__} attribute store" in row["where"]
    finally:
        store.cache.clear()


def test_finds_untracked_containers() -> None:
    plain = {i: i * 2 for i in range(70_000)}  # ints only: the gc does not track this dict
    gc.collect()
    assert not gc.is_tracked(plain)
    holder = [plain]
    rows = _rows(memscope.snapshot(collectors=["containers"])["containers"])
    assert any(r["length"] == 70_000 for r in rows)
    del holder, plain


def test_rows_are_bounded_and_sorted() -> None:
    data = ContainersCollector(top=5).collect()
    lengths = [r["length"] for r in data["top"]]
    assert len(lengths) == 5
    assert lengths == sorted(lengths, reverse=True)


def test_summary_never_runs_user_code() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("repr of user objects must not run")

    items = [Loud() for _ in range(40_000)]
    rows = _rows(memscope.snapshot(collectors=["containers"])["containers"])
    row = next(r for r in rows if r["length"] == 40_000)
    assert "Loud>" in row["summary"]
    del items


def test_large_objects_over_threshold_with_holder() -> None:
    global _blob
    _blob = bytes((3 << 20) + 12_345)  # an odd size, so no other module's buffer matches
    try:
        snap = memscope.snapshot(collectors=["large_objects"])
        rows = snap["large_objects"]["objects"]
        size = sys.getsizeof(_blob)
        row = next(r for r in rows if r["type"] == "bytes" and r["size_bytes"] == size)
        assert row["where"] == f"module {__name__} attribute _blob"
        assert row["summary"].startswith("bytes of 3,158,073 bytes")
        assert snap["large_objects"]["threshold_bytes"] == 1 << 20
    finally:
        _blob = b""


def test_large_objects_threshold_and_top() -> None:
    keep = [bytearray(200_000 + i) for i in range(5)]
    data = LargeObjectsCollector(threshold_bytes=150_000, top=3).collect()
    assert len(data["objects"]) == 3
    assert all(r["size_bytes"] >= 150_000 for r in data["objects"])
    with pytest.raises(ValueError, match="threshold_bytes must be an int >= 1"):
        LargeObjectsCollector(threshold_bytes=0)
    del keep


def test_scan_collectors_share_one_walk() -> None:
    from memscope.collectors import _heap

    calls = []
    real = _heap.scan_heap

    def counting(request: Any) -> Any:
        calls.append(request)
        return real(request)

    _heap.scan_heap = counting  # type: ignore[assignment]
    try:
        snap = memscope.snapshot(collectors=["census", "containers", "large_objects"])
    finally:
        _heap.scan_heap = real  # type: ignore[assignment]
    assert len(calls) == 1, calls
    assert {"census", "containers", "large_objects"} <= set(snap.sections)
    # the one walk was made for what all three asked: the union of their requests
    collectors = memscope.registered_collectors()
    assert calls[0].containers == collectors["containers"].top  # type: ignore[attr-defined]
    assert calls[0].large_top == collectors["large_objects"].top  # type: ignore[attr-defined]


def test_concurrent_deep_snapshots_walk_one_at_a_time() -> None:
    import threading

    from memscope.collectors import _heap

    inside = [0]
    most = [0]
    real = _heap._scan_heap

    def counting(request: Any, *args: Any) -> Any:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        try:
            return real(request, *args)
        finally:
            inside[0] -= 1

    _heap._scan_heap = counting  # type: ignore[assignment]
    try:
        results: list[memscope.Snapshot] = []
        threads = [
            threading.Thread(target=lambda: results.append(memscope.snapshot(deep=True)))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        _heap._scan_heap = real  # type: ignore[assignment]
    assert len(results) == 3 and all("census" in snap for snap in results)
    # each walk would otherwise traverse the others' working lists, several times the cost
    assert most[0] == 1
