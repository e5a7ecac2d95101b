"""Retained and deep bytes of the containers and large_objects rows: exact, bounded, safe."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import memscope
from memscope._base.units import format_bytes
from memscope.collectors.containers import ContainersCollector
from memscope.collectors.large import LargeObjectsCollector

# A fresh interpreter: no other thread allocates between the counts. Objects the walk
# frees are 40 bytes and more, so the heap count's own id ints (32 bytes) never land in
# their freed blocks.
BRUTE_FORCE = textwrap.dedent(
    """
    import gc, sys
    import memscope
    from memscope.collectors.containers import ContainersCollector
    from memscope.collectors.large import LargeObjectsCollector

    OLD = set()
    SIZES = {}

    def heap():
        # every live object once: the gc's objects, then what they reach that it does not track
        SIZES.clear()
        stack = gc.get_objects()
        skip = {id(OLD), id(SIZES), id(stack)}
        while stack:
            o = stack.pop()
            if id(o) in SIZES or id(o) in skip:
                continue
            SIZES[id(o)] = sys.getsizeof(o)
            stack.extend(r for r in gc.get_referents(o) if not gc.is_tracked(r))
            if type(o) is dict:
                stack.extend(k for k in dict.keys(o) if not gc.is_tracked(k))

    def freed_by(release):
        gc.collect()
        heap()
        before = dict(SIZES)
        release()
        gc.collect()
        heap()
        return sum(n for oid, n in before.items() if oid not in SIZES and oid not in OLD)

    class Entry:
        def __init__(self, i, shared):
            self.name = f"entry-{i:05d}"
            self.blob = bytes(60 + i % 7)
            self.shared = shared
            self.pair = (10**30 + i, 10**31 + i)

    SHARED = [f"shared-{i}-" + "x" * 40 for i in range(3)]  # held by the module too
    HELD = []  # a module global: a running frame's locals are not seen by the count
    REG = None

    def rows(snap, name):
        section = snap[name]
        table = section["top"] if name == "containers" else section["objects"]
        return {r["path"]: r for r in table if r.get("path")}

    def main():
        # budgets a loaded machine cannot run out of: this checks the figures, not the cuts
        memscope.register_collector(ContainersCollector(deep_seconds=120), replace=True)
        memscope.register_collector(LargeObjectsCollector(deep_seconds=120), replace=True)
        memscope.snapshot(deep=True, collectors=["containers", "large_objects"])  # warm up
        gc.collect()
        heap()
        OLD.update(SIZES)
        global REG
        REG = {}
        for i in range(3_000):
            REG[f"key-{i:05d}"] = Entry(i, SHARED[i % 3])
        # a container in the top lists of both sections, inside another top row
        REG["big"] = [10**25 + i for i in range(150_000)]
        HELD.append(REG["key-00007"].blob)  # one blob is held from outside too
        snap = memscope.snapshot(deep=True, collectors=["containers", "large_objects"])
        reg = rows(snap, "containers")["__main__.REG"]
        big = rows(snap, "containers")["__main__.REG['big']"]
        large = rows(snap, "large_objects")["__main__.REG['big']"]
        print(reg["retained_bytes"], reg["deep_bytes"], reg["deep_truncated"])
        print(big["retained_bytes"], large["retained_bytes"], large["deep_bytes"])
        del snap, reg, big, large
        freed_list = freed_by(lambda: REG.pop("big"))
        freed_rest = freed_by(lambda: globals().pop("REG"))
        shared = sum(sys.getsizeof(s) for s in SHARED)
        print(freed_list, freed_rest, shared, sys.getsizeof(HELD[0]))

    main()
    """
)


@pytest.mark.slow
def test_rows_retain_exactly_what_letting_them_go_frees() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BRUTE_FORCE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    first, second, third = out.stdout.split("\n")[:3]
    retained, deep, truncated = first.split()
    big, large, large_deep = map(int, second.split())
    freed_list, freed_rest, shared, kept = map(int, third.split())
    assert truncated == "False"
    # the list is held only by the dict: the scans' own lists of kept rows do not count
    assert int(retained) == freed_list + freed_rest
    assert big == large == large_deep == freed_list
    # deep counts what is shared too: the module's three strings and the blob held outside;
    # and the key 'big', a constant of the script's code
    assert int(deep) == freed_list + freed_rest + shared + kept + sys.getsizeof("big")


@pytest.fixture(autouse=True)
def registry_restored() -> Iterator[None]:
    # budgets a loaded machine does not run out of (the cuts have their own test), then
    # the defaults again
    memscope.register_collector(ContainersCollector(deep_seconds=60), replace=True)
    memscope.register_collector(LargeObjectsCollector(deep_seconds=60), replace=True)
    yield
    memscope.register_collector(ContainersCollector(), replace=True)
    memscope.register_collector(LargeObjectsCollector(), replace=True)


_cache: dict[str, list[bytes]] = {}


def _row(snap: memscope.Snapshot, length: int) -> dict[str, Any]:
    return next(r for r in snap["containers"]["top"] if r["length"] == length)


@pytest.mark.slow
def test_deep_snapshots_measure_cheap_ones_do_not() -> None:
    shared = bytes(300)
    _cache.update((f"k{i}", [shared]) for i in range(41_234))
    try:
        cheap = _row(memscope.snapshot(collectors=["containers"]), 41_234)
        assert "retained_bytes" not in cheap and "deep_bytes" not in cheap
        snap = memscope.snapshot(deep=True, collectors=["containers"])
        row = _row(snap, 41_234)
        # the dict, its keys, each list; the one bytes all lists share is held here too
        per_entry = sys.getsizeof("k10000") + sys.getsizeof([b""])
        assert row["retained_bytes"] >= 41_234 * per_entry
        assert row["deep_bytes"] == row["retained_bytes"] + sys.getsizeof(shared)
        assert row["deep_truncated"] is False
        assert snap["containers"]["deep_cut"] is False
        assert snap["containers"]["deep_rows"] == len(snap["containers"]["top"])
        line = next(x for x in snap["containers"].summary_lines(20) if "41,234 items" in x)
        assert f"retains {format_bytes(row['retained_bytes'])}" in line
        memscope.register_collector(ContainersCollector(deep=True, deep_seconds=60), replace=True)
        assert _row(memscope.snapshot(collectors=["containers"]), 41_234)["retained_bytes"]
        memscope.register_collector(ContainersCollector(deep=False), replace=True)
        opted_out = _row(memscope.snapshot(deep=True, collectors=["containers"]), 41_234)
        assert "retained_bytes" not in opted_out
    finally:
        _cache.clear()


def test_the_time_budget_cuts_the_section_and_says_so() -> None:
    _cache.update((f"k{i}", [bytes(10)]) for i in range(42_345))
    try:
        memscope.register_collector(ContainersCollector(deep=True, deep_seconds=1e-9), replace=True)
        section = memscope.snapshot(collectors=["containers"])["containers"]
        row = _row_of(section, 42_345)
        assert row["retained_bytes"] is None and row["deep_bytes"] is None
        assert section["deep_cut"] is True and section["deep_rows"] == 0
        assert "the budget cut the rest" in section.summary_lines(30)[-1]
        # an object budget cuts inside the first row's walk: a lower bound, no retained size
        memscope.register_collector(
            ContainersCollector(deep=True, deep_seconds=60, deep_objects=500), replace=True
        )
        section = memscope.snapshot(collectors=["containers"])["containers"]
        first = section["top"][0]
        assert first["length"] == 42_345
        assert first["deep_truncated"] is True and first["retained_bytes"] is None
        assert 0 < first["deep_bytes"] < sys.getsizeof(_cache) + 500 * 100
        assert " reaches >=" in section.summary_lines(1)[0]
    finally:
        _cache.clear()


def _row_of(section: Any, length: int) -> dict[str, Any]:
    return next(r for r in section["top"] if r["length"] == length)


def test_retained_sizes_diff_only_between_measured_rows() -> None:
    _cache.update((f"k{i}", [bytes(20)]) for i in range(43_456))
    try:
        cheap = memscope.snapshot(collectors=["containers"])
        first = memscope.snapshot(deep=True, collectors=["containers"])
        for i in range(0, 43_456, 2):
            _cache[f"k{i}"].append(bytes(2_000 + i))  # grows what it keeps, not its length
        second = memscope.snapshot(deep=True, collectors=["containers"])
        changes = memscope.compare(first, second).changes.get("containers", [])
        key = _row(second, 43_456)["key"]
        found = {c.key: c for c in changes}
        grown = found[f"top[{key}].retained_bytes"]
        assert grown.after - grown.before >= 21_728 * 2_000
        assert f"top[{key}].deep_bytes" in found
        assert f"top[{key}].length" not in found
        # a cheap snapshot's row was not measured: that is not a retained size of 0
        against_cheap = memscope.compare(cheap, second).changes.get("containers", [])
        assert not any(c.key.endswith((".retained_bytes", ".deep_bytes")) for c in against_cheap)
        assert not any(c.key.startswith("deep_") for c in changes)
    finally:
        _cache.clear()


_blob_holder: list[bytearray] = []


def test_large_objects_rows_and_their_diff() -> None:
    inner = bytearray((2 << 20) + 4_321)
    _blob_holder.append(inner)
    try:
        first = memscope.snapshot(deep=True, collectors=["large_objects"])
        row = next(
            r for r in first["large_objects"]["objects"] if r["size_bytes"] == sys.getsizeof(inner)
        )
        assert row["retained_bytes"] == row["deep_bytes"] == sys.getsizeof(inner)
        line = next(x for x in first["large_objects"].summary_lines(30) if "bytearray" in x)
        assert "retains 2.0 MiB" in line
        inner.extend(bytes(1 << 20))  # the same object, its own size grows
        second = memscope.snapshot(deep=True, collectors=["large_objects"])
        keys = {c.key for c in memscope.compare(first, second).changes["large_objects"]}
        assert f"objects[{row['key']}].retained_bytes" in keys
        cheap = memscope.snapshot(collectors=["large_objects"])
        keys = {c.key for c in memscope.compare(cheap, second).changes.get("large_objects", [])}
        assert not any(k.endswith(".retained_bytes") for k in keys)
    finally:
        _blob_holder.clear()


class Hostile:
    """Every hook a walk might be tempted to call raises."""

    def __init__(self) -> None:
        self.payload = bytes(500)

    def __repr__(self) -> str:
        raise AssertionError("repr called")

    def __eq__(self, other: object) -> bool:
        raise AssertionError("eq called")

    def __hash__(self) -> int:
        raise AssertionError("hash called")

    def __sizeof__(self) -> int:
        raise AssertionError("sizeof called")

    def __len__(self) -> int:
        raise AssertionError("len called")


class Box:
    """Weakly referenceable, to see that nothing keeps a measured row alive."""

    def __init__(self) -> None:
        self.items = [Hostile() for _ in range(44_567)]


def test_no_user_code_runs_and_no_reference_stays() -> None:
    box = Box()
    watch = weakref.ref(box)
    snap = memscope.snapshot(deep=True, collectors=["containers", "large_objects"])
    row = next(r for r in snap["containers"]["top"] if r["length"] == 44_567)
    # each Hostile, its attributes' dict and its own 500 bytes, all only the list holds
    assert row["retained_bytes"] >= 44_567 * (sys.getsizeof(bytes(500)) + 16)
    del box
    gc.collect()
    assert watch() is None  # neither the rows nor the walk kept the objects


def test_bad_options_are_refused() -> None:
    with pytest.raises(TypeError, match="deep must be True, False or None"):
        ContainersCollector(deep=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deep_seconds"):
        ContainersCollector(deep_seconds=0)
    with pytest.raises(ValueError, match="deep_objects"):
        LargeObjectsCollector(deep_objects=0)
    with pytest.raises(TypeError, match="deep_seconds"):
        LargeObjectsCollector(deep_seconds="1")  # type: ignore[arg-type]


_blobs: list[bytes] = []


def test_the_container_that_keeps_the_most_is_named_when_it_is_not_the_longest() -> None:
    _cache.update((f"k{i}", i) for i in range(45_678))  # long, keeps little
    _blobs.extend(bytes(700 + i % 7) for i in range(30_000))  # shorter, keeps 22 MB
    try:
        section = memscope.snapshot(deep=True, collectors=["containers"])["containers"]
        rows = section["top"]
        longest = next(r for r in rows if r["length"] == 45_678)
        blobs = next(r for r in rows if r["length"] == 30_000)
        assert blobs["retained_bytes"] >= 30_000 * 700 > longest["retained_bytes"]
        best = max(rows, key=lambda r: r["retained_bytes"] or 0)
        line = next(x for x in section.summary_lines(30) if x.startswith("keeps the most: "))
        assert f"retains {format_bytes(best['retained_bytes'])}" in line
        assert f"({best['length']:,} items)" in line
    finally:
        _cache.clear()
        _blobs.clear()
