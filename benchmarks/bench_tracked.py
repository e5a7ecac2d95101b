"""Deep sizes of tracked objects: memscope's walk, explain()'s walk and pympler.asizeof.

Run: .venv/bin/python benchmarks/bench_tracked.py [--scale 1.0]

For each shape (a BoundedCache of 100k entries, a dict of 100k str -> bytes, a list of
100k tuples, a tree of nested dicts and lists, 100k __slots__ instances), all in one
process and on the same objects:
- the truth: the bytes freed when the object is let go (sys.getsizeof of every object of
  the whole heap before and after, counted by a brute-force walk, on a small heap first);
- memscope.collectors.tracked.deep_size (the tracked section's walk: deep and retained);
- memscope.why._sizes.measure (explain()'s walk: deep and retained);
- pympler.asizeof.asizeof (deep, its own sizes: aligned to 8 bytes).
Then the same walks on a heap of about a million other objects. Prints seconds, bytes,
each one's bytes against the truth, and speed ratios; writes benchmarks/results/tracked.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
HELD: dict[str, Any] = {}  # a module global: the brute-force count sees what it holds


class Value:
    def __init__(self, i: int) -> None:
        self.name = f"value-{i:07d}"
        self.blob = bytes(64 + i % 16)


class Slotted:
    __slots__ = ("label", "weight")

    def __init__(self, i: int) -> None:
        self.label = f"slot-{i:07d}"
        self.weight = 1.5 * i


def _cache(n: int) -> object:
    from memscope.guard import BoundedCache

    cache: BoundedCache[str, Value] = BoundedCache(maxsize=2 * n, name="bench_cache")
    for i in range(n):
        cache[f"key-{i:07d}"] = Value(i)
    return cache


def _tree(n: int) -> object:
    return {
        f"branch-{b}": [{"leaf": f"leaf-{b}-{i}", "n": [i, i + 1]} for i in range(n // 100)]
        for b in range(100)
    }


def shapes(n: int) -> dict[str, Callable[[], object]]:
    """name -> a builder of the same object each time."""
    return {
        f"BoundedCache of {n:,} entries": lambda: _cache(n),
        f"dict of {n:,} str -> bytes": lambda: {f"k{i:07d}": bytes(100) for i in range(n)},
        f"list of {n:,} tuples": lambda: [(i, f"t{i}") for i in range(n)],
        f"tree of {n // 100 * 100:,} nested dicts": lambda: _tree(n),
        f"list of {n:,} __slots__ objects": lambda: [Slotted(i) for i in range(n)],
    }


def heap_sizes() -> dict[int, int]:
    """id -> sys.getsizeof of every live object (gc objects and what they hold untracked)."""
    sizes: dict[int, int] = {}
    stack = gc.get_objects()
    skip = {id(sizes), id(stack)}
    while stack:
        o = stack.pop()
        if id(o) in sizes or id(o) in skip:
            continue
        sizes[id(o)] = sys.getsizeof(o)
        stack.extend(r for r in gc.get_referents(o) if not gc.is_tracked(r))
        if isinstance(o, dict):
            stack.extend(k for k in dict.keys(o) if not gc.is_tracked(k))
    return sizes


def freed_bytes(build: Callable[[], object]) -> int:
    """What letting go of the built object frees (only objects made with it are counted)."""
    gc.collect()
    old = heap_sizes()
    import memscope

    HELD["x"] = build()
    memscope.untrack(HELD["x"])  # the registry's entry is memscope's, not held by the object
    gc.collect()
    before = heap_sizes()
    HELD.clear()
    gc.collect()
    after = heap_sizes()
    return sum(n for oid, n in before.items() if oid not in after and oid not in old)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def walks(obj: object) -> dict[str, tuple[float, int, int | None]]:
    """walker -> (seconds, deep bytes, retained bytes or None)."""
    from pympler import asizeof

    from memscope.collectors.tracked import deep_size, namespaces
    from memscope.why._roots import find_roots
    from memscope.why._sizes import measure

    far = time.monotonic() + 3_600
    out: dict[str, tuple[float, int, int | None]] = {}
    stop = namespaces()
    t, own = timed(lambda: deep_size(obj, deadline=far, max_objects=10**9, stop=stop))
    out["memscope deep_size"] = (t, own.deep_bytes, own.retained_bytes)
    roots = find_roots()  # explain()'s stops: module namespaces, sys.modules, thread frames
    ids = {oid for oid, root in roots.by_id.items() if root.kind in ("module", "sys.modules")}
    roots.release()
    t, m = timed(lambda: measure(obj, ids, far))
    out["explain measure"] = (t, m.deep_bytes, m.retained_bytes)
    t, a = timed(lambda: asizeof.asizeof(obj))
    out["pympler asizeof"] = (t, int(a), None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 is 100k entries a shape")
    args = parser.parse_args(argv)
    import memscope.collectors.tracked  # imports before the counts
    import memscope.why._sizes  # noqa: F401

    n = max(int(100_000 * args.scale), 200)
    builders = shapes(n)
    # the truth first, on a small heap (the brute-force walk visits all of it, three times)
    truth = {name: freed_bytes(build) for name, build in builders.items()}
    small = {name: walks(build()) for name, build in builders.items()}
    background = [[{"k": [i]}, f"bg-{i:09d}"] for i in range(int(250_000 * args.scale))]
    gc.collect()
    print(f"heap: {len(gc.get_objects()):,} gc-tracked objects while walking")
    results: dict[str, Any] = {"scale": args.scale, "entries": n, "shapes": {}}
    ratios: dict[str, list[float]] = {"explain measure": [], "pympler asizeof": []}
    for name, build in builders.items():
        obj = build()
        found = walks(obj)
        del obj
        print(f"\n{name}: truth (freed when let go) {truth[name]:,} B")
        print(f"  {'walker':<20}{'seconds':>9}{'deep bytes':>14}{'vs truth':>10}{'retained':>14}")
        row: dict[str, Any] = {"truth_bytes": truth[name]}
        for walker, (seconds, deep, retained) in found.items():
            small_deep = small[name][walker][1]
            kept = "" if retained is None else f"{retained:>14,}"
            print(
                f"  {walker:<20}{seconds:>9.3f}{deep:>14,}{deep / truth[name]:>9.3f}x{kept}"
                + ("" if small_deep == deep else f"  (small heap: {small_deep:,})")
            )
            row[walker] = {
                "seconds": round(seconds, 4),
                "deep_bytes": deep,
                "retained_bytes": retained,
                "deep_vs_truth": round(deep / truth[name], 4),
            }
        own = found["memscope deep_size"][0]
        for walker in ratios:
            ratios[walker].append(found[walker][0] / own)
        print(
            "  memscope deep_size is "
            + "; ".join(f"{found[w][0] / own:.2f}x faster than {w}" for w in ratios)
        )
        results["shapes"][name] = row
    del background
    for walker, values in ratios.items():
        print(f"memscope deep_size vs {walker}: {min(values):.2f}x to {max(values):.2f}x faster")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracked.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
