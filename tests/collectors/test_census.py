"""The census counts every live object exactly, untracked ones included."""

from __future__ import annotations

import gc
import json
import sys

import pytest

import memscope
from memscope._base.collector import HeapRequest
from memscope.collectors.census import CensusCollector, count_types


class Planted:
    """Instances of this class are counted exactly."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def _count(tp: type) -> int:
    return count_types().get(tp, (0, 0))[0]


def test_counts_planted_instances_exactly() -> None:
    gc.collect()
    before = _count(Planted)
    keep = [Planted(i) for i in range(12_345)]
    assert _count(Planted) - before == 12_345
    del keep
    gc.collect()
    assert _count(Planted) == before


HOLD: list[object] = []


def test_counts_untracked_strings_bytes_ints_exactly() -> None:
    # exact means exact: the test runner's own threads (xdist's channel) must not make or
    # free objects between the two counts, so they get no turn of the GIL meanwhile
    switch = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        _count_untracked_exactly()
    finally:
        sys.setswitchinterval(switch)


def _count_untracked_exactly() -> None:
    gc.collect()
    base = count_types()
    # built at run time: unique values, none of them gc-tracked
    strings = [f"s-{i}-{id(base)}" for i in range(10_000)]
    blobs = {i: bytes([i % 256]) * 100 for i in range(3_000)}  # an untracked dict of plain values
    big = [10**30 + i for i in range(2_000)]
    HOLD.append(blobs)  # in a container: what a leak looks like
    gc.collect()
    after = count_types()
    HOLD.clear()
    assert not gc.is_tracked(blobs)  # the point: gc.get_objects() cannot see it
    assert after[str][0] - base[str][0] == 10_000
    assert after[bytes][0] - base[bytes][0] == 3_000
    # the dict keys are ints too, less the small ints (-5..256) that always exist
    assert after[int][0] - base[int][0] >= 2_000 + 3_000 - 257
    assert after[bytes][1] - base[bytes][1] >= 3_000 * 100
    del strings, blobs, big


def test_shared_objects_are_counted_once() -> None:
    gc.collect()
    s = "".join(["shared", "-", "value"])  # one object, referenced from many places
    before = _count(str)
    holders = [[s, s, s] for _ in range(1_000)]
    after = _count(str)
    assert after - before == 0  # the string existed before; lists only add references
    del holders


def test_section_shape_totals_and_coverage() -> None:
    snap = memscope.snapshot(collectors=["census"])
    census = snap["census"]
    assert census["complete"] is True
    assert "untracked" in census["coverage"]
    assert census["objects_total"] == census["gc_tracked_objects"] + census["untracked_objects"]
    assert census["objects_total"] >= sum(r["count"] for r in census["by_type"])
    assert census["size_bytes_total"] >= sum(r["size_bytes"] for r in census["by_module"][:1])
    sizes = [r["size_bytes"] for r in census["by_type"]]
    assert sizes == sorted(sizes, reverse=True)
    assert len(census["by_type"]) <= 100
    assert {r["module"] for r in census["by_module"]} >= {"builtins"}
    json.dumps(census.to_dict())


def test_gc_only_mode_says_what_it_covered() -> None:
    data = CensusCollector(complete=False).collect()
    assert data["complete"] is False
    assert data["untracked_objects"] == 0
    assert "gc-tracked objects only" in data["coverage"]


def test_does_not_count_its_own_working_objects() -> None:
    # two censuses back to back see the same number of lists and dicts: the scan's
    # own chunk lists, counters and sets are not in what it reports
    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # no other thread makes objects between the two censuses
    # nor a collection: one that starts inside a census frees garbage of the process
    # while it counts; with none, garbage the census itself left would be counted
    gc.disable()
    try:
        gc.collect()
        a = count_types()
        b = count_types()
    finally:
        gc.enable()
        sys.setswitchinterval(old)
    assert b[list][0] - a[list][0] == 0
    # 'a' itself is one dict, its values are tuples of two ints
    assert b[dict][0] - a[dict][0] == 1
    # and the census left no garbage: the walk of running frames once held itself (its
    # generator's frame, and the dict of every thread's top frame) in a cycle
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
    assert left == []


def test_by_module_names_the_package_holding_memory() -> None:
    keep = [Planted(i) for i in range(20_000)]
    snap = memscope.snapshot(collectors=["census"])
    modules = {r["module"]: r for r in snap["census"]["by_module"]}
    top_level = __name__.split(".", 1)[0]
    assert modules[top_level]["count"] >= 20_000
    del keep


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="top must be an int >= 1"):
        CensusCollector(top=0)


def test_direct_sizeof_path_counts_exactly_like_getsizeof() -> None:
    from memscope.collectors import _heap

    # a heap with big single-type levels and big mixed ones, so every path is taken
    mixed: list[object] = []
    for i in range(30_000):
        mixed.extend((f"m{i}", (i, -i), 2.5 * i, bytes(i % 7), Planted(i), [i], {i: None}))
    HOLD.append(mixed)
    # this test is about the two sizing paths: running frames' locals (counted by their own
    # tests in test_frames.py) are left out, so the frames pytest runs in cannot differ
    real_locals = _heap.running_locals
    _heap.running_locals = lambda **_: []  # type: ignore[assignment]
    try:
        request = HeapRequest(where=False)  # one request for both: neither walk adds it
        # a first walk fills the ABC caches its own iterators meet (Counter(zip) asks
        # isinstance(zip, Mapping)), so neither measured walk sees those sets appear
        _heap.scan_heap(request).release()
        gc.collect()
        fast = _heap.scan_heap(request)
        _heap.FAST_PATH = False  # a plain attribute write: creates no object the scan could see
        slow = _heap.scan_heap(request)
    finally:
        _heap.FAST_PATH = True
        _heap.running_locals = real_locals  # type: ignore[assignment]
        HOLD.clear()
    # 'fast' itself adds its seconds float, one dict, one list per type and
    # the ints in them, and its keys make a few static types reachable; everything else must
    # agree to the object and the byte
    for tp in (str, bytes, Planted, set):
        assert fast.tally.get(tp) == slow.tally.get(tp), tp
    assert slow.tally[tuple][0] == fast.tally[tuple][0]
    assert slow.tally[float][0] - fast.tally[float][0] == 1
    assert slow.tally[list][0] - fast.tally[list][0] == len(fast.tally) + 2  # rows + 2 top lists
    assert 0 <= slow.tally[dict][0] - fast.tally[dict][0] <= 4  # the dicts the result holds


def test_str_keys_of_dicts_are_counted_once() -> None:
    # a dict whose keys are all str does not show them to gc.get_referents: the census
    # must fetch them itself, and count a key shared by several dicts once
    from collections import OrderedDict

    gc.collect()
    before = count_types()
    plain = {f"plain-{i}-{id(before)}": i * 1_000_003 for i in range(2_000)}  # untracked
    holders = {f"obj-{i}-{id(before)}": [i] for i in range(1_000)}  # tracked (lists)
    ordered = OrderedDict((f"ord-{i}-{id(before)}", None) for i in range(500))
    shared_key = f"shared-{id(before)}"
    many = [{shared_key: i} for i in range(300)]  # one key object in 300 dicts
    mixed = {f"mixed-{i}-{id(before)}": 1 for i in range(100)} | {7: 7}  # not str-only
    HOLD.extend([plain, holders, ordered, many, mixed])
    gc.collect()
    after = count_types()
    HOLD.clear()
    assert after[str][0] - before[str][0] == 2_000 + 1_000 + 500 + 1 + 100


def test_a_failing_python_sizeof_is_never_called() -> None:
    class Broken:
        def __sizeof__(self) -> int:
            raise RuntimeError("broken __sizeof__")

    HOLD.extend(Broken() for _ in range(7))
    try:
        snap = memscope.snapshot(collectors=["census", "containers", "large_objects"])
        counted = count_types().get(Broken)
    finally:
        HOLD.clear()
    assert snap.errors == {}
    assert snap["census"]["sizeof_errors"] == 0  # a Python __sizeof__ is not called at all
    assert counted is not None and counted[0] == 7
    assert 0 < counted[1] < 7 * 1024  # sized by its own layout


def test_frozen_objects_are_reported_as_not_covered() -> None:
    import subprocess
    import sys

    code = (
        "import gc, memscope\n"
        "class M: pass\n"
        "keep = [M() for _ in range(1000)]\n"
        "gc.freeze()\n"
        "c = memscope.snapshot(collectors=['census'])['census']\n"
        "print(c['complete'], c['frozen_objects'] > 1000, 'gc.freeze()' in c['coverage'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


def test_numpy_object_arrays_and_deep_sizeof_count_each_byte_once() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # exact counts: the runner's threads wait (see above)
    try:
        pd.DataFrame({"a": np.arange(3), "s": ["x", "y", "z"]})  # pandas' first-use caches
        gc.collect()
        base = count_types()
        n = 200_000
        frame = pd.DataFrame({"a": np.arange(n), "s": [f"cell-{i}-{id(base)}" for i in range(n)]})
        gc.collect()
        after = count_types()
    finally:
        sys.setswitchinterval(switch)
    # the strings live only in an object array, which shows nothing to the gc: still counted
    # (give or take the few strings pandas' own caches make or drop meanwhile; without the
    # arrays' items the count would not move at all)
    assert abs(after[str][0] - base[str][0] - n) < 200
    # DataFrame.__sizeof__ is deep (Python code counting its arrays and strings): the census
    # sizes the frame itself shallowly, so those bytes are counted once, where they are
    assert after[pd.DataFrame][1] < 1024
    grew = sum(v[1] for v in after.values()) - sum(v[1] for v in base.values())
    held = frame["a"].to_numpy().nbytes + 8 * n + sum(sys.getsizeof(s) for s in frame["s"])
    assert held * 0.95 < grew < held * 1.25, (grew, held)
    del frame
