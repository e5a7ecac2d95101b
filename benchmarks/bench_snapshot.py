"""memscope.snapshot() against pympler and guppy3 on one heap of about two million objects.

Run: .venv/bin/python benchmarks/bench_snapshot.py [--scale 1.0]

Prints the times, the ratios the README quotes, the object counts each tool saw,
the cheap snapshot's median on a small and the big heap, import cost, and the
extra memory a deep snapshot needs compared with the heap it scans. Writes
benchmarks/results/snapshot.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).parent / "results"


class Planted:
    """A class whose instance count must come out exact."""

    def __init__(self, i: int) -> None:
        self.i = i


def build_heap(n: int) -> list[object]:
    """n dicts holding a list, n instances, n unique strings, n tuples of ints (about 6n objects)."""
    dicts = [{"k": [i]} for i in range(n)]
    instances = [Planted(i) for i in range(n)]
    strings = [f"planted-{i:09d}" for i in range(n)]
    tuples = [(i * 3 + 100_000, i) for i in range(n)]
    return [dicts, instances, strings, tuples]


def cheap_median_ms(rounds: int = 200) -> float:
    import memscope

    memscope.snapshot()  # first call loads the collectors
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        memscope.snapshot()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def import_cost_ms() -> tuple[float, list[str]]:
    code = (
        "import sys,time;t=time.perf_counter();import memscope;d=time.perf_counter()-t;"
        "print(d);print(','.join(m for m in ('objgraph','pympler','graphviz','psutil','asyncio',"
        "'rich','matplotlib','starlette','prometheus_client') if m in sys.modules))"
    )
    best = float("inf")
    heavy: list[str] = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split("\n")
        best = min(best, float(out[0]))
        heavy = [m for m in out[1].split(",") if m]
    return best * 1000, heavy


def retained_cost(memscope: Any, with_retained: float) -> dict[str, Any]:
    """What the containers' and large objects' retained sizes add to a deep snapshot."""
    from memscope.collectors.containers import ContainersCollector
    from memscope.collectors.large import LargeObjectsCollector

    snap = memscope.snapshot(deep=True, collectors=["containers", "large_objects"])
    boxes, large = snap["containers"], snap["large_objects"]
    out: dict[str, Any] = {
        "budget_seconds": ContainersCollector().deep_seconds,
        "containers_deep_seconds": boxes["deep_seconds"],
        "containers_deep_rows": boxes["deep_rows"],
        "containers_deep_cut": boxes["deep_cut"],
        "large_deep_seconds": large["deep_seconds"],
        "large_deep_rows": large["deep_rows"],
        "large_deep_cut": large["deep_cut"],
        "top_container": boxes.summary_lines(1)[0].strip(),
    }
    del snap, boxes, large
    memscope.register_collector(ContainersCollector(deep=False), replace=True)
    memscope.register_collector(LargeObjectsCollector(deep=False), replace=True)
    try:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            memscope.snapshot(deep=True)
            times.append(time.perf_counter() - t)
    finally:
        memscope.register_collector(ContainersCollector(), replace=True)
        memscope.register_collector(LargeObjectsCollector(), replace=True)
    out["deep_snapshot_without_retained_seconds"] = min(times)
    out["retained_added_seconds"] = with_retained - min(times)
    return out


def full_walk(target: object, peers: bool) -> dict[str, Any]:
    """The top container's retained size without a budget, and guppy3's domisize of it."""
    from memscope.collectors._deep import deep_size, namespaces

    t = time.perf_counter()
    found = deep_size(target, deadline=time.monotonic() + 600, max_objects=10**9, stop=namespaces())
    out: dict[str, Any] = {
        "walk_seconds": time.perf_counter() - t,
        "walk_objects": found.deep_objects,
        "walk_retained_bytes": found.retained_bytes,
    }
    if peers:
        from guppy import hpy

        h = hpy()
        t = time.perf_counter()
        out["guppy_domisize_bytes"] = h.iso(target).domisize
        out["guppy_domisize_seconds"] = time.perf_counter() - t
        del h
        gc.collect()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="heap size factor (1.0: 2M objects)"
    )
    parser.add_argument("--skip-peers", action="store_true", help="measure memscope only")
    args = parser.parse_args()
    n = int(330_000 * args.scale)

    import memscope

    small_ms = cheap_median_ms()
    gc.collect()
    from memscope.collectors.census import count_types

    rss0 = psutil.Process().memory_info().rss
    gc.collect()
    # raw counts keyed by type objects: holding them creates no str and no Planted
    before = count_types()
    heap = build_heap(n)
    gc.collect()
    after = count_types()
    planted_str = after[str][0] - before[str][0]
    planted_delta = after[Planted][0] - before.get(Planted, (0, 0))[0]
    del after, before
    heap_bytes = psutil.Process().memory_info().rss - rss0
    big_ms = cheap_median_ms()

    # deep snapshot: best of 3
    times = []
    snap = None
    for _ in range(3):
        t = time.perf_counter()
        snap = memscope.snapshot(deep=True)
        times.append(time.perf_counter() - t)
    assert snap is not None
    ms_time = min(times)
    census = snap["census"]
    by_type = {row["type"]: row for row in census["by_type"]}
    planted = by_type.get(f"{__name__}.Planted", {}).get("count")
    # exactness: the census delta over building the heap is exactly what was planted
    deep_rows = retained_cost(memscope, ms_time)
    deep_rows.update(full_walk(heap[0], not args.skip_peers))

    # extra memory: only what the snapshot allocates is traced (the heap was built before)
    tracemalloc.start()
    memscope.snapshot(deep=True)
    _, ms_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    result: dict[str, object] = {
        **deep_rows,
        "objects_planned": 6 * n,
        "heap_rss_bytes": heap_bytes,
        "memscope_deep_seconds": ms_time,
        "memscope_objects": census["objects_total"],
        "memscope_planted_instances": planted,
        "planted_instances_expected": n,
        "planted_strings_delta": planted_str,
        "planted_instances_delta": planted_delta,
        "memscope_peak_extra_bytes": ms_peak,
        "cheap_median_ms_small_heap": small_ms,
        "cheap_median_ms_big_heap": big_ms,
    }
    strings_row = by_type.get("str", {})
    result["memscope_str_count"] = strings_row.get("count")

    if not args.skip_peers:
        from pympler import muppy, summary

        t = time.perf_counter()
        objects = muppy.get_objects()
        rows = summary.summarize(objects)
        result["pympler_seconds"] = time.perf_counter() - t
        result["pympler_objects"] = len(objects)
        result["pympler_planted_instances"] = next(
            (r[1] for r in rows if r[0].endswith(".Planted")), None
        )
        del objects, rows
        gc.collect()
        tracemalloc.start()
        objects = muppy.get_objects()
        rows = summary.summarize(objects)
        result["pympler_peak_extra_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del objects, rows
        gc.collect()

        from guppy import hpy

        t = time.perf_counter()
        h = hpy().heap()
        table = str(h)  # the type table
        result["guppy_seconds"] = time.perf_counter() - t
        result["guppy_objects"] = h.count
        del h, table
        gc.collect()

    imp_ms, heavy = import_cost_ms()
    result["import_ms"] = imp_ms
    result["import_heavy_modules"] = heavy

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "snapshot.json").write_text(json.dumps(result, indent=2))

    print(f"heap: {6 * n:,} objects planned, {heap_bytes / 2**20:.0f} MiB RSS")
    print(f"{'tool':<34}{'seconds':>9}{'objects':>12}{'vs memscope':>13}")
    print(
        f"{'memscope snapshot(deep=True)':<34}{ms_time:>9.2f}{census['objects_total']:>12,}{'1.0x':>13}"
    )
    if "pympler_seconds" in result:
        ps, gs = float(result["pympler_seconds"]), float(result["guppy_seconds"])  # type: ignore[arg-type]
        print(
            f"{'pympler summarize(get_objects())':<34}{ps:>9.2f}{result['pympler_objects']:>12,}{ps / ms_time:>12.1f}x"
        )
        print(
            f"{'guppy3 hpy().heap() + table':<34}{gs:>9.2f}{result['guppy_objects']:>12,}{gs / ms_time:>12.1f}x"
        )
        like = float(deep_rows["deep_snapshot_without_retained_seconds"])
        print(
            f"like for like (pympler computes no retained sizes): memscope without the rows' "
            f"retained sizes {like:.2f} s: pympler {ps / like:.1f}x, guppy3 {gs / like:.1f}x"
        )
        print(
            f"memscope sees {census['objects_total'] - int(result['pympler_objects']):+,} objects vs pympler"
        )  # type: ignore[call-overload]
    print(
        f"planted: {n:,} instances and {n:,} strings; census delta: {planted_delta:,} Planted, "
        f"{planted_str:,} str (exact: {planted_delta == n and planted_str == n})"
    )
    print(
        f"cheap snapshot() median: {small_ms:.3f} ms on a small heap, {big_ms:.3f} ms on the big heap"
    )
    print(f"import memscope: {imp_ms:.1f} ms; heavy modules imported: {heavy or 'none'}")
    print(
        f"retained sizes of the containers and large_objects rows: "
        f"+{deep_rows['retained_added_seconds']:.2f} s on a deep snapshot "
        f"({deep_rows['deep_snapshot_without_retained_seconds']:.2f} s without them); "
        f"containers {deep_rows['containers_deep_seconds']:.2f} s for "
        f"{deep_rows['containers_deep_rows']} rows (cut: {deep_rows['containers_deep_cut']}), "
        f"large_objects {deep_rows['large_deep_seconds']:.2f} s for "
        f"{deep_rows['large_deep_rows']} rows (cut: {deep_rows['large_deep_cut']}); "
        f"budget {deep_rows['budget_seconds']:.1f} s a section"
    )
    print(f"largest container: {deep_rows['top_container']}")
    print(
        f"its retained size without a budget: {deep_rows['walk_retained_bytes'] / 2**20:.1f} MiB, "
        f"{deep_rows['walk_objects']:,} objects in {deep_rows['walk_seconds']:.2f} s"
    )
    if "guppy_domisize_seconds" in deep_rows:
        gs = deep_rows["guppy_domisize_seconds"]
        print(
            f"guppy3 hpy().iso(it).domisize: {deep_rows['guppy_domisize_bytes'] / 2**20:.1f} MiB "
            f"in {gs:.2f} s ({gs / deep_rows['walk_seconds']:.2f}x memscope's time)"
        )
    print(
        f"deep snapshot peak extra memory: {ms_peak / 2**20:.1f} MiB = "
        f"{ms_peak / heap_bytes:.2f} of the heap it scans"
    )
    if "pympler_peak_extra_bytes" in result:
        pp = int(result["pympler_peak_extra_bytes"])  # type: ignore[call-overload]
        print(
            f"pympler peak extra memory: {pp / 2**20:.1f} MiB = {pp / heap_bytes:.2f} of the heap"
        )
    del heap
    return 0


if __name__ == "__main__":
    sys.exit(main())
