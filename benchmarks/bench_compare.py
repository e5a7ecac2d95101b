"""compare() on two deep snapshots of a 2M-object heap, against a naive diff and objgraph.

Run: .venv/bin/python benchmarks/bench_compare.py [--scale 1.0] [--rounds 5]

The heap: about two million objects (scale 1.0) in dicts, instances, strings and tuples,
with a leak planted between the two snapshots (a module-level registry of per-request
objects, a growing list of sockets). Times, on the same two snapshots:
- memscope.compare(a, b) (every section diffed, rows paired), and compare + str(diff)
  (the findings and the ranked table, what a user reads);
- a naive diff: flatten both snapshots' JSON (lists by index) and subtract every number;
- objgraph.growth() on the same heap: what the peers offer instead of comparing two
  snapshots (a type count over gc.get_objects(), against its previous call).
Prints the times, the ratio of compare() to its 50 ms budget and to the peers, writes
benchmarks/results/compare.json, and exits 1 when compare() misses the budget.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
BUDGET_SECONDS = 0.050


class Planted:
    def __init__(self, i: int) -> None:
        self.i = i


class Export:
    """A per-request object filed in the registry: the leak."""

    def __init__(self, i: int) -> None:
        self.rows = [i, i + 1]


_registry: dict[str, dict[str, dict[int, Export]]] = {"acme": {"exports": {}}}
_sockets: list[socket.socket] = []


def build_heap(n: int) -> list[object]:
    """n dicts holding a list, n instances, n unique strings, n tuples (about 6n objects)."""
    return [
        [{"k": [i]} for i in range(n)],
        [Planted(i) for i in range(n)],
        [f"planted-{i:09d}" for i in range(n)],
        [(i * 3 + 100_000, i) for i in range(n)],
    ]


def leak(requests: int) -> None:
    for i in range(requests):
        _registry["acme"]["exports"][i] = Export(i)
    for _ in range(min(100, requests)):
        _sockets.append(socket.socket())


def _flatten(data: Any, prefix: str, out: dict[str, float]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            _flatten(v, f"{prefix}.{k}", out)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _flatten(v, f"{prefix}[{i}]", out)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix] = data


def naive_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, float]]:
    """Every number that differs, largest first: what a script would do with two dumps."""
    fa: dict[str, float] = {}
    fb: dict[str, float] = {}
    _flatten(a, "", fa)
    _flatten(b, "", fb)
    deltas = [(k, v - fa.get(k, 0)) for k, v in fb.items() if v != fa.get(k, 0)]
    deltas.sort(key=lambda kv: abs(kv[1]), reverse=True)
    return deltas


def best(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = about 2M objects")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import memscope

    heap = build_heap(max(1000, int(333_000 * args.scale)))
    objects = len(gc.get_objects())
    memscope.snapshot(deep=True)  # memscope's own first-use imports are not the leak
    gc.collect()
    started = time.perf_counter()
    a = memscope.snapshot(label="before", deep=True)
    snap_seconds = time.perf_counter() - started
    leak(max(100, int(2000 * args.scale)))
    gc.collect()
    b = memscope.snapshot(label="after", deep=True)
    census = b["census"]
    print(
        f"heap: {census['objects_total']:,} objects ({objects:,} gc-tracked); "
        f"a deep snapshot took {snap_seconds:.2f} s"
    )

    # the walk up to named roots that a deep snapshot makes for its containers (1 s budget)
    from memscope._base.collector import HeapRequest
    from memscope.collectors._heap import scan_heap
    from memscope.collectors._holder_paths import holder_paths

    scan = scan_heap(HeapRequest(containers=20, where=False))
    targets = [obj for _, _, obj in scan.containers]
    scan.release()
    started = time.perf_counter()
    named = holder_paths(targets)
    t_paths = time.perf_counter() - started
    print(
        f"holder paths of the {len(targets)} longest containers: {t_paths:.2f} s "
        f"({len(named)} reached a named root; budget 1 s)"
    )
    del targets, named

    t_compare = best(lambda: memscope.compare(a, b), args.rounds)
    t_story = best(lambda: str(memscope.compare(a, b)), args.rounds)
    da, db = a.to_dict(), b.to_dict()
    t_naive = best(lambda: naive_diff(da, db), args.rounds)
    peer = None
    try:
        import objgraph

        objgraph.growth(limit=20, shortnames=False)  # its baseline
        leak(10)
        t_objgraph: float | None = best(
            lambda: objgraph.growth(limit=20, shortnames=False), max(1, args.rounds // 2)
        )
        peer = "objgraph.growth()"
    except ImportError:
        t_objgraph = None

    story = str(memscope.compare(a, b)).splitlines()
    print("\n".join(story[:6]))
    print()
    print(
        f"compare():              {t_compare * 1000:8.2f} ms  = {t_compare / BUDGET_SECONDS:.2f}x the 50 ms budget"
    )
    print(
        f"compare() + str(diff):  {t_story * 1000:8.2f} ms  = {t_story / BUDGET_SECONDS:.2f}x the 50 ms budget"
    )
    print(
        f"naive JSON diff:        {t_naive * 1000:8.2f} ms  compare() takes "
        f"{t_compare / t_naive:.2f}x its time (and ranks, pairs and words the changes)"
    )
    if t_objgraph is not None:
        print(
            f"{peer}:      {t_objgraph * 1000:8.2f} ms  compare() takes "
            f"{t_compare / t_objgraph:.4f}x its time ({t_objgraph / t_compare:,.0f}x faster)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(
        json.dumps(
            {
                "objects": census["objects_total"],
                "compare_seconds": t_compare,
                "compare_and_str_seconds": t_story,
                "naive_seconds": t_naive,
                "objgraph_growth_seconds": t_objgraph,
                "holder_paths_seconds": t_paths,
                "budget_seconds": BUDGET_SECONDS,
                "first_lines": story[:6],
            },
            indent=2,
        )
    )
    del heap
    ok = t_compare <= BUDGET_SECONDS and t_story <= BUDGET_SECONDS
    print("target met" if ok else "target missed: compare() over 50 ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
