"""Deep and retained sizes of tracked objects: exact on a real heap, bounded, opt-in when cheap."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import memscope
from memscope.collectors.tracked import TrackedCollector, TrackedSection, deep_size

# a fresh interpreter: no other thread allocates between the counts
BRUTE_FORCE = textwrap.dedent(
    """
    import gc, sys
    import memscope
    from memscope.collectors.tracked import deep_size

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
            if type(o) is dict or type(o) is Cache:
                stack.extend(k for k in dict.keys(o) if not gc.is_tracked(k))

    class Cache(dict):
        pass

    class Entry:
        def __init__(self, i, shared):
            self.name = f"entry-{i:05d}"
            self.blob = bytes(50 + i % 7)
            self.shared = shared
            self.pair = (10**30 + i, 10**31 + i)

    SHARED = [f"shared-{i}-" + "x" * 40 for i in range(3)]  # held by the module too
    HELD = []  # a module global: a running frame's locals are not seen by the count

    def main():
        probe = Cache(a=1)
        memscope.snapshot(deep=True, collectors=["tracked"])  # imports and one-time caches
        deep_size(probe, deadline=1e18, max_objects=10)
        gc.collect()
        heap()
        OLD.update(SIZES)
        cache = memscope.track(Cache(), name="brute")
        for i in range(2_000):
            cache[f"key-{i:05d}"] = Entry(i, SHARED[i % 3])
        HELD.append(cache["key-00007"].blob)  # one blob is held from outside too
        snap = memscope.snapshot(deep=True, collectors=["tracked"])
        row = next(r for r in snap["tracked"]["objects"] if r["name"] == "brute")
        print(row["retained_bytes"], row["deep_bytes"], row["deep_truncated"])
        del snap, row
        memscope.untrack(cache)  # the registry's entry for it would go with it too
        gc.collect()
        heap()
        before = dict(SIZES)
        del cache
        gc.collect()
        heap()
        freed = sum(n for oid, n in before.items() if oid not in SIZES and oid not in OLD)
        print(freed, sum(sys.getsizeof(s) for s in SHARED), sys.getsizeof(HELD[0]))

    main()
    """
)


def test_retained_and_deep_bytes_match_a_brute_force_count() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BRUTE_FORCE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split("\n")[:2]
    retained, deep, truncated = first.split()
    freed, shared, kept = map(int, second.split())
    assert truncated == "False"
    assert int(retained) == freed  # exactly what went when the cache was let go
    # deep counts what is shared too: the module's three strings and the blob held outside
    assert int(deep) == freed + shared + kept


class Cache(dict[str, Any]):
    """Weakly referenceable, so it is tracked without an owner."""


@pytest.fixture
def registry_restored() -> Iterator[None]:
    yield
    memscope.register_collector(TrackedCollector(), replace=True)


def _row(name: str, *, deep: bool) -> dict[str, Any]:
    snap = memscope.snapshot(deep=deep, collectors=["tracked"])
    return next(r for r in snap["tracked"]["objects"] if r["name"] == name)


def test_deep_sizes_in_deep_snapshots_and_opt_in_for_cheap_ones(registry_restored: None) -> None:
    cache = memscope.track(Cache((f"k{i}", bytes(200)) for i in range(1_000)), name="t_deep")
    cheap = _row("t_deep", deep=False)
    assert "deep_bytes" not in cheap and "retained_bytes" not in cheap
    full = _row("t_deep", deep=True)
    assert full["deep_truncated"] is False
    assert full["retained_bytes"] == full["deep_bytes"]  # nothing inside is held elsewhere
    assert full["deep_bytes"] >= 1_000 * sys.getsizeof(bytes(200)) + sys.getsizeof(cache)
    assert full["deep_objects"] == 1 + 2 * 1_000  # the dict, its keys, its values
    memscope.register_collector(TrackedCollector(deep=True), replace=True)
    opted = _row("t_deep", deep=False)
    assert opted["deep_bytes"] == full["deep_bytes"]
    memscope.register_collector(TrackedCollector(deep=False), replace=True)
    assert "deep_bytes" not in _row("t_deep", deep=True)
    memscope.untrack(cache)


def test_the_budgets_cut_the_walk_and_say_so(registry_restored: None) -> None:
    cache = memscope.track(Cache((f"k{i}", [i]) for i in range(5_000)), name="t_cut")
    memscope.register_collector(TrackedCollector(deep_objects=100), replace=True)
    snap = memscope.snapshot(deep=True, collectors=["tracked"])
    row = next(r for r in snap["tracked"]["objects"] if r["name"] == "t_cut")
    assert row["deep_truncated"] is True and row["retained_bytes"] is None
    assert row["deep_objects"] <= 100
    assert 0 < row["deep_bytes"] < sys.getsizeof(cache) + 100 * 100
    line = next(x for x in snap["tracked"].summary_lines(50) if x.startswith("t_cut:"))
    assert "deep=>=" in line
    found = deep_size(cache, deadline=time.monotonic() - 1.0, max_objects=10**9)
    assert found.truncated and found.retained_bytes is None  # a deadline already gone
    memscope.untrack(cache)


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

    def __getattribute__(self, name: str) -> Any:
        raise AssertionError(f"getattribute {name} called")


def test_no_user_code_runs_and_shared_objects_are_not_retained() -> None:
    shared = bytes(10_000)
    cache = Cache(a=Hostile(), b=shared)
    found = deep_size(cache, deadline=time.monotonic() + 30, max_objects=10**6)
    assert not found.truncated
    own = sys.getsizeof(cache) + sys.getsizeof("a") + sys.getsizeof("b")
    assert found.deep_bytes >= own + sys.getsizeof(shared) + 500
    # the local name ``shared`` holds the blob from outside: deep, not retained
    assert found.retained_bytes is not None
    assert found.deep_bytes - found.retained_bytes >= sys.getsizeof(shared)


def test_a_guard_cache_reports_what_its_entries_hold() -> None:
    from memscope.guard import BoundedCache

    cache: BoundedCache[str, bytes] = BoundedCache(maxsize=100, name="t_guard_deep")
    for i in range(50):
        cache[f"k{i}"] = bytes(1_000 + i)
    row = _row("t_guard_deep", deep=True)
    blobs = sum(sys.getsizeof(bytes(1_000 + i)) for i in range(50))
    assert row["retained_bytes"] >= blobs
    assert row["deep_bytes"] >= row["retained_bytes"]
    del cache


def test_deep_sizes_diff_only_between_measured_rows() -> None:
    cache = memscope.track(Cache(x=bytes(100)), name="t_deep_diff")
    cheap = memscope.snapshot(collectors=["tracked"])
    first = memscope.snapshot(deep=True, collectors=["tracked"])
    cache["y"] = bytes(50_000)
    second = memscope.snapshot(deep=True, collectors=["tracked"])
    keys = {c.key for c in memscope.compare(first, second).changes.get("tracked", [])}
    assert "objects[t_deep_diff].retained_bytes" in keys
    assert "objects[t_deep_diff].deep_bytes" in keys
    # a cheap snapshot has no deep size: that is not a deep size of 0
    against_cheap = {c.key for c in memscope.compare(cheap, second).changes.get("tracked", [])}
    assert "objects[t_deep_diff].deep_bytes" not in against_cheap
    assert isinstance(second["tracked"], TrackedSection)
    memscope.untrack(cache)


def test_a_tracked_object_inside_another_is_retained_by_it() -> None:
    outer = memscope.track(Cache(), name="t_outer")
    inner = memscope.track(Cache((f"i{i}", bytes(1_000)) for i in range(100)), name="t_inner")
    outer["inner"] = inner
    del inner  # only the outer cache holds it now (the registry's reference is weak)
    rows = {
        r["name"]: r
        for r in memscope.snapshot(deep=True, collectors=["tracked"])["tracked"]["objects"]
    }
    inner_row = rows["t_inner"]
    assert inner_row["retained_bytes"] == inner_row["deep_bytes"] > 100 * 1_000
    # the section's own list of the tracked objects does not count as holding the inner one
    assert rows["t_outer"]["retained_bytes"] >= inner_row["retained_bytes"]
    memscope.untrack(outer)


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(TypeError, match="deep must be True, False or None"):
        TrackedCollector(deep=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deep_seconds"):
        TrackedCollector(deep_seconds=0)
    with pytest.raises(ValueError, match="deep_objects"):
        TrackedCollector(deep_objects=0)
