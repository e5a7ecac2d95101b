"""retained_bytes and deep_bytes: exact against a brute-force count of a real heap."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from collections.abc import Callable

import memscope

# a fresh interpreter: no other thread allocates between the two counts
BRUTE_FORCE = textwrap.dedent(
    """
    import gc, sys, types
    import memscope

    OLD = set()  # ids alive before the structure was built
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
            if type(o) is dict:  # a dict of str keys does not show them to the gc
                stack.extend(k for k in dict.keys(o) if not gc.is_tracked(k))

    class Node:
        def __init__(self, parent):
            self.parent = parent  # a cycle back to the object explained

    class Model:
        pass

    shared = "shared-" + "x" * 50

    def main():
        zoo = types.ModuleType("zoo"); sys.modules["zoo"] = zoo
        zoo.registry = {"keep": Model(), "drop": None}
        memscope.explain(zoo.registry["keep"])  # first use: imports and one-time caches
        gc.collect()
        heap()
        OLD.update(SIZES)
        zoo.registry["drop"] = m = Model()
        m.names = [f"name-{i:04d}" for i in range(50)]
        m.blobs = {i: bytes(100 + i) for i in range(20)}
        m.shared = shared                       # held by the module too: not retained
        m.child = Node(m)
        m.pair = (10**30, 10**31)
        m.index = {f"key-{i:04d}": 10**30 + i for i in range(40)}  # str keys the gc hides
        zoo.registry["keep"].sibling = m.blobs[3]  # one blob is held from outside
        del m
        e = memscope.explain(zoo.registry["drop"])
        retained, deep = e.retained_bytes, e.deep_bytes
        del e
        gc.collect()
        heap()
        before = dict(SIZES)
        zoo.registry["drop"] = None   # the key stays: only what the model retains goes
        gc.collect()
        heap()
        # what went, among the objects made since the structure was built
        freed = sum(n for oid, n in before.items() if oid not in SIZES and oid not in OLD)
        print(retained, deep, freed)

    main()
    """
)


def test_retained_bytes_match_a_brute_force_count() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BRUTE_FORCE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    retained, deep, freed = map(int, out.stdout.split())
    assert retained == freed
    assert deep > retained  # the shared string and the blob held from outside


class Model:
    pass


def test_retained_excludes_what_others_hold(make_module: Callable[[str], types.ModuleType]) -> None:
    app = make_module("app_sizes")
    m = Model()
    own = [bytes(1000 + i) for i in range(10)]
    m.own = own  # type: ignore[attr-defined]
    app.shared = bytes(50_000)
    m.shared = app.shared  # type: ignore[attr-defined]
    app.m = m
    e = memscope.explain(m)
    own_bytes = sys.getsizeof(m) + sys.getsizeof(own) + sum(map(sys.getsizeof, own))
    # `own` is also a local of this test: it is held from outside, like app.shared
    assert e.retained_bytes == sys.getsizeof(m)
    del own
    e = memscope.explain(m)
    assert e.retained_bytes == own_bytes
    assert e.deep_bytes >= own_bytes + sys.getsizeof(app.shared)
    assert e.retained_objects == 12 and e.deep_objects > e.retained_objects
    assert e.sizes_complete
    assert "retained 12.4 KiB in 12 objects" in e.report() or "retained" in e.report()


def test_cycle_is_retained_whole(make_module: Callable[[str], types.ModuleType]) -> None:
    app = make_module("app_cycle")
    a: list[object] = []
    b: list[object] = [a]
    a.append(b)
    app.a = a
    both = sys.getsizeof(a) + sys.getsizeof(b)
    del b
    e = memscope.explain(a)
    assert e.retained_objects == 2 and e.retained_bytes == both


def test_a_huge_object_times_out_into_lower_bounds(
    make_module: Callable[[str], types.ModuleType],
) -> None:
    app = make_module("app_huge")
    app.big = [[i] for i in range(200_000)]
    e = memscope.explain(app.big, timeout=0.002)
    assert not e.sizes_complete
    assert "at least" in e.report()
