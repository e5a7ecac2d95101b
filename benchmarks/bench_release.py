"""release_memory() vs a bare gc.collect() + malloc_trim(0), on the same heap in separate processes.

Run: .venv/bin/python benchmarks/bench_release.py [--quick]

Each scenario builds its heap in a fresh child process (the same builder code for
every contender), measures RSS, runs one contender, measures RSS again:

1. malloc heap: 1M 1 KiB bytes objects (malloc, not pymalloc), every 100th kept.
   Target: RSS after release_memory() <= 1.10 x RSS after the bare calls.
2. pymalloc heap: 5M small strings, every 100th kept. The arenas stay pinned and
   nothing in-process can return them; the report must say so rather than claim
   success. The same heap under PYTHONMALLOC=malloc shows the remedy it names.
3. churn in 4 threads: each thread builds and drops batches of small dicts and strings,
   keeping 1 in 200, under pymalloc and under PYTHONMALLOC=malloc. RSS is read after the
   workload (nothing trimmed yet) and after release_memory(): the C allocator keeps what
   is freed resident until something trims it, so PYTHONMALLOC=malloc only pays off with
   periodic trimming (release_memory() or a MemoryGuard), which the advice must say.

Also times the allocator collector in-process against the fd 2 capture of
sys._debugmallocstats() and a psutil RSS read. Prints tables; writes
benchmarks/results/bench_release.json.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.10
KEEP_EVERY = 100


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(kind: str, n: int) -> list[Any]:
    """The shared heap builder: n objects, every KEEP_EVERY-th kept, the rest freed."""
    if kind == "malloc":
        # bytes * 1024 writes every byte: the pages really are resident
        data: list[Any] = [bytes([i % 251]) * 1024 for i in range(n)]
    else:
        data = [str(i) * 2 for i in range(n)]  # ~60-byte strings: pymalloc blocks
    keep = data[::KEEP_EVERY]
    del data
    return keep


CHURN_THREADS = 4
CHURN_ROUNDS = 20


def churn(n: int) -> list[Any]:
    """A service-like workload: threads build and drop batches, a few survivors kept."""
    import threading

    survivors: list[Any] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        for r in range(CHURN_ROUNDS):
            batch = [
                {"id": i, "name": f"user-{seed}-{r}-{i}", "blob": "x" * (40 + i % 200)}
                for i in range(n)
            ]
            with lock:
                survivors.extend(batch[::200])
            del batch

    threads = [threading.Thread(target=work, args=(s,)) for s in range(CHURN_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return survivors


def child(kind: str, n: int, contender: str) -> None:
    """Build the heap, run one contender, print one JSON line with the numbers."""
    # Both contenders import memscope first, as a service using it would have: the
    # comparison is of the release itself, not of memscope's import (about 2-3 MiB).
    import memscope.guard.release  # noqa: F401

    keep = churn(n) if kind == "churn" else build(kind, n)
    before = rss_bytes()
    started = time.perf_counter()
    out: dict[str, Any] = {}
    if contender == "memscope":
        from memscope.guard import release_memory

        report = release_memory()
        out["report"] = report.to_dict()
    else:
        gc.collect()
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        out["trimmed"] = bool(libc.malloc_trim(0))
    seconds = time.perf_counter() - started
    after = rss_bytes()
    out.update(rss_before_bytes=before, rss_after_bytes=after, seconds=seconds, kept=len(keep))
    print(json.dumps(out))


def run_child(
    kind: str, n: int, contender: str, env_extra: dict[str, str] | None = None
) -> dict[str, Any]:
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(n), contender],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {kind}/{contender} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def mib(n: float) -> str:
    return f"{n / (1 << 20):8.1f}"


def collector_costs(repeats: int, n_small: int, n_malloc: int) -> tuple[list[dict[str, Any]], int]:
    """Per-call cost of the allocator collector and the alternatives, on scenario (2)'s heap.

    pymalloc's statistics walk every pool of every arena, so the cost grows with the
    number of arenas; this is the pinned heap, the expensive case.
    """
    import psutil

    from memscope._base.libc import _stats_via_stderr
    from memscope.collectors.allocator import AllocatorCollector

    keep = build("pymalloc", n_small) + build("malloc", n_malloc)
    proc = psutil.Process()
    contenders = {
        "AllocatorCollector().collect()": AllocatorCollector().collect,
        "  pymalloc part only (ctypes + fmemopen)": AllocatorCollector(
            mallinfo=lambda: None
        ).collect,
        "sys._debugmallocstats() via fd 2 capture": _stats_via_stderr,
        "psutil memory_info() (RSS only)": proc.memory_info,
    }
    rows = []
    for name, fn in contenders.items():
        fn()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            best = min(best, (time.perf_counter() - start) / repeats)
        rows.append({"name": name, "seconds_per_call": best})
    arenas = int(AllocatorCollector().collect()["pymalloc_arenas"] or 0)
    del keep
    return rows, arenas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the objects")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "N", "CONTENDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0

    from memscope.guard.release import malloc_trim_available

    if not malloc_trim_available():
        print("this benchmark compares against glibc malloc_trim; not available here")
        return 0
    scale = 10 if args.quick else 1
    n_malloc, n_small = 1_000_000 // scale, 5_000_000 // scale
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()),
        "n_malloc": n_malloc,
        "n_small": n_small,
    }

    # (1) malloc heap: memscope vs bare, each in its own process
    ours = run_child("malloc", n_malloc, "memscope")
    bare = run_child("malloc", n_malloc, "bare")
    ratio = ours["rss_after_bytes"] / bare["rss_after_bytes"]
    results["malloc"] = {"memscope": ours, "bare": bare, "ratio": ratio}

    # (2) pymalloc heap: pinned arenas, then the same heap with PYTHONMALLOC=malloc
    pinned = run_child("pymalloc", n_small, "memscope")
    pinned_bare = run_child("pymalloc", n_small, "bare")
    remedy = run_child("pymalloc", n_small, "memscope", {"PYTHONMALLOC": "malloc"})
    results["pymalloc"] = {"memscope": pinned, "bare": pinned_bare, "pythonmalloc_malloc": remedy}

    # (3) the same churn under each allocator: untrimmed, then after release_memory()
    n_churn = 100_000 // scale
    churn_py = run_child("churn", n_churn, "memscope", {"PYTHONMALLOC": "pymalloc"})
    churn_c = run_child("churn", n_churn, "memscope", {"PYTHONMALLOC": "malloc"})
    results["churn"] = {"pymalloc": churn_py, "malloc": churn_c, "batch": n_churn}

    costs, arenas = collector_costs(50 if args.quick else 200, n_small, n_malloc)
    results["collector_costs"] = costs
    results["collector_costs_arenas"] = arenas
    results["total_seconds"] = time.perf_counter() - t0

    print(f"bench_release: Python {results['python']}, {results['libc']}")
    print()
    print(f"{'scenario':44} {'RSS before MiB':>14} {'RSS after MiB':>14} {'seconds':>8}")
    rows = [
        (f"(1) {n_malloc:,} x 1 KiB, bare gc+malloc_trim", bare),
        (f"(1) {n_malloc:,} x 1 KiB, release_memory()", ours),
        (f"(2) {n_small:,} small str, bare gc+malloc_trim", pinned_bare),
        (f"(2) {n_small:,} small str, release_memory()", pinned),
        ("(2) same, PYTHONMALLOC=malloc, release_memory()", remedy),
        (f"(3) churn {CHURN_THREADS} threads, pymalloc", churn_py),
        (f"(3) churn {CHURN_THREADS} threads, PYTHONMALLOC=malloc", churn_c),
    ]
    for label, row in rows:
        print(
            f"{label:44} {mib(row['rss_before_bytes']):>14} {mib(row['rss_after_bytes']):>14} "
            f"{row['seconds']:8.3f}"
        )
    print()
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(
        f"(1) RSS after: release_memory / bare = {ratio:.3f} "
        f"(target <= {TARGET_RATIO:.2f}) {verdict}"
    )
    report = pinned["report"]
    claims_success = "pinned" not in report["explanation"]
    print(
        f"(2) pymalloc utilisation after: {report['pymalloc_utilisation']:.1%}; "
        f"report explains pinned arenas: {'no  FAIL' if claims_success else 'yes PASS'}"
    )
    print(f"(2) explanation: {report['explanation']}")
    print(f"(2) with PYTHONMALLOC=malloc: {remedy['report']['explanation']}")
    untrimmed = churn_c["rss_before_bytes"] / churn_py["rss_before_bytes"]
    trimmed = churn_c["rss_after_bytes"] / churn_py["rss_after_bytes"]
    print(
        f"(3) RSS PYTHONMALLOC=malloc / pymalloc: untrimmed {untrimmed:.2f}x, "
        f"after release_memory() {trimmed:.2f}x "
        f"(malloc pays off only when something trims)"
    )
    print()
    print(f"{f'per-call cost ({arenas} pymalloc arenas)':44} {'microseconds':>14}")
    for row in costs:
        print(f"{row['name']:44} {row['seconds_per_call'] * 1e6:14.1f}")
    print(f"\ntotal {results['total_seconds']:.1f} s")

    out = Path(__file__).parent / "results" / "bench_release.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0 if verdict == "PASS" and not claims_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
