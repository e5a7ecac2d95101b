"""BoundedCache vs cachetools (guarded by a threading.Lock), same keys, one process.

Run: .venv/bin/python benchmarks/bench_cache.py [--quick]
Prints ops/s and ratios, writes benchmarks/results/bench_cache.json.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import random
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools

from memscope.guard.cache import BoundedCache
from memscope.guard.cache_decorator import bounded_cache

# targets from the issue: memscope / peer (higher is better; for bytes, lower is better)
TARGETS = {
    "get-hit (LRU)": 1.5,
    "get-hit (ttl)": 3.0,
    "miss+set+evict (LRU)": 1.5,
}


def best_rate(run: Callable[[], int], repeats: int) -> float:
    """Best ops/s over ``repeats`` runs of ``run`` (which returns how many ops it did)."""
    best = 0.0
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        n = run()
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    return best


def bench_get_hit(
    keys: list[int], size: int, repeats: int, ttl: float | None
) -> tuple[float, float]:
    ours: BoundedCache[int, int]
    peer: Any
    if ttl is None:
        ours = BoundedCache(size)
        peer = cachetools.LRUCache(size)
    else:
        ours = BoundedCache(size, ttl=ttl)
        peer = cachetools.TTLCache(size, ttl=ttl)
    for k in range(size):
        ours[k] = k
        peer[k] = k
    lock = threading.Lock()

    def run_ours() -> int:
        c = ours
        for k in keys:
            c[k]
        return len(keys)

    def run_peer() -> int:
        c = peer
        for k in keys:
            with lock:
                c[k]
        return len(keys)

    # interleave so that machine noise hits both alike
    a = b = 0.0
    for _ in range(repeats):
        a = max(a, best_rate(run_ours, 1))
        b = max(b, best_rate(run_peer, 1))
    return a, b


def bench_miss_set_evict(stream: list[int], size: int, repeats: int) -> tuple[float, float]:
    lock = threading.Lock()

    def run_ours() -> int:
        c: BoundedCache[int, int] = BoundedCache(size)
        get = c.get
        for k in stream:
            if get(k) is None:
                c[k] = k
        return len(stream)

    def run_peer() -> int:
        c = cachetools.LRUCache(size)
        for k in stream:
            # one lock acquisition per op for the peer: the kindest way to guard it
            with lock:
                if c.get(k) is None:
                    c[k] = k
        return len(stream)

    a = b = 0.0
    for _ in range(repeats):
        a = max(a, best_rate(run_ours, 1))
        b = max(b, best_rate(run_peer, 1))
    return a, b


def bench_decorator(keys: list[int], size: int, repeats: int) -> tuple[float, float, float]:
    @bounded_cache(maxsize=size)
    def ours(k: int) -> int:
        return k

    @cachetools.cached(cachetools.LRUCache(size), lock=threading.Lock())
    def peer(k: int) -> int:
        return k

    @functools.lru_cache(maxsize=size)
    def stdlib(k: int) -> int:
        return k

    for k in range(size):
        ours(k)
        peer(k)
        stdlib(k)

    def runner(fn: Callable[[int], int]) -> Callable[[], int]:
        def run() -> int:
            for k in keys:
                fn(k)
            return len(keys)

        return run

    a = b = c = 0.0
    for _ in range(repeats):
        a = max(a, best_rate(runner(ours), 1))
        b = max(b, best_rate(runner(peer), 1))
        c = max(c, best_rate(runner(stdlib), 1))
    return a, b, c


def bytes_per_entry(n: int) -> tuple[float, float]:
    keys = list(range(n))
    values = [k + 1 for k in keys]  # small ints, created before measuring

    def measure(make: Callable[[], Any]) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            c = make()
            for k, v in zip(keys, values):
                c[k] = v
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del c
        return (after - before) / n

    return measure(lambda: BoundedCache(n)), measure(lambda: cachetools.LRUCache(n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer ops, for a smoke run")
    args = parser.parse_args(argv)
    ops = 50_000 if args.quick else 400_000
    repeats = 2 if args.quick else 5
    size = 10_000
    rng = random.Random(42)
    keys = [rng.randrange(size) for _ in range(ops)]  # all hits
    stream = list(range(ops))  # all misses: every set evicts once the cache is full

    rows: list[dict[str, Any]] = []

    def add(name: str, ours: float, peer: float, peer_name: str) -> None:
        rows.append(
            {
                "benchmark": name,
                "memscope_ops_per_s": ours,
                "peer": peer_name,
                "peer_ops_per_s": peer,
                "ratio": ours / peer,
                "target": TARGETS.get(name),
            }
        )

    add("get-hit (LRU)", *bench_get_hit(keys, size, repeats, None), "LRUCache+Lock")
    add("get-hit (ttl)", *bench_get_hit(keys, size, repeats, 3600.0), "TTLCache+Lock")
    add(
        "miss+set+evict (LRU)",
        *bench_miss_set_evict(stream, 1_000, repeats),
        "LRUCache+Lock",
    )
    dec_ours, dec_peer, dec_std = bench_decorator(keys, size, repeats)
    add("decorator hit", dec_ours, dec_peer, "@cached(LRUCache, lock)")
    add("decorator hit", dec_ours, dec_std, "functools.lru_cache")
    ours_b, peer_b = bytes_per_entry(100_000)

    print(f"python {platform.python_version()}, cachetools {cachetools.__version__}, ops={ops}")
    header = f"{'benchmark':<22} {'memscope ops/s':>15} {'peer':<24} {'peer ops/s':>12} {'ratio':>7} {'target':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f">={r['target']}x" if r["target"] else ""
        print(
            f"{r['benchmark']:<22} {r['memscope_ops_per_s']:>15,.0f} {r['peer']:<24} "
            f"{r['peer_ops_per_s']:>12,.0f} {r['ratio']:>6.2f}x {target:>7}"
        )
    print(
        f"{'bytes/entry (100k)':<22} {ours_b:>15.1f} {'LRUCache':<24} {peer_b:>12.1f} "
        f"{ours_b / peer_b:>6.2f}x {'<=1.0x':>7}"
    )
    missed = [r["benchmark"] for r in rows if r["target"] and r["ratio"] < r["target"]]
    if ours_b > peer_b:
        missed.append("bytes/entry")
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")

    out = Path(__file__).parent / "results" / "bench_cache.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": sys.version,
                "cachetools": cachetools.__version__,
                "ops": ops,
                "rows": rows,
                "bytes_per_entry": {"memscope": ours_b, "cachetools.LRUCache": peer_b},
                "targets_missed": missed,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
