"""Concurrent deep snapshots: one, two and three at once, against running them one after another.

Run: .venv/bin/python benchmarks/bench_concurrent.py [--scale 1.0] [--src DIR]

Each case runs in a fresh process on the same heap (about 1.9 million objects at scale
1.0): the time from starting the snapshots (in threads) until the last one is done, and
the peak RSS the snapshots add over the heap (ru_maxrss). "k at once" is compared with
"k one after another" in the same process kind. A Monitor with ``deep_every`` plus one
ad-hoc ``snapshot(deep=True)`` is the everyday way to get two at once. ``--src DIR``
measures another checkout's ``src`` (e.g. an older commit in a git worktree).
Writes benchmarks/results/concurrent.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import gc, resource, sys, threading, time
import memscope

class Planted:
    def __init__(self, i):
        self.i = i

n = int(320_000 * SCALE)
heap = (
    [{"k": [i]} for i in range(n)],
    [Planted(i) for i in range(n)],
    [f"planted-{i:09d}" for i in range(n)],
    [(i * 3 + 100_000, i) for i in range(n)],
)
gc.collect()
memscope.snapshot()  # first use (imports every collector), outside the measurement
gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
k, mode = K, MODE
start = time.perf_counter()
if mode == "at once":
    threads = [threading.Thread(target=memscope.snapshot, kwargs={"deep": True}) for _ in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
else:
    for _ in range(k):
        memscope.snapshot(deep=True)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(seconds, peak * 1024, sum(map(len, heap)))
"""


def run(k: int, mode: str, scale: float, env: dict[str, str]) -> tuple[float, int, int]:
    code = CHILD.replace("SCALE", repr(scale)).replace("K,", f"{k},").replace("MODE", repr(mode))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    seconds, peak, objects = out.stdout.split()
    return float(seconds), int(peak), int(objects)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="heap size factor")
    parser.add_argument("--src", help="measure memscope from this src directory instead")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src)
    rows = []
    print(f"{'snapshots':<22} {'seconds':>8} {'peak +MiB':>10}  vs one after another")
    ok = True
    for k in (1, 2, 3):
        seq_s, seq_peak, objects = run(k, "one after another", args.scale, env)
        if k == 1:
            print(f"(heap of {objects:,} planted objects)")
            print(f"{'1':<22} {seq_s:8.2f} {seq_peak / 2**20:10.1f}")
            rows.append({"k": 1, "seconds": seq_s, "peak_bytes": seq_peak})
            continue
        con_s, con_peak, _ = run(k, "at once", args.scale, env)
        time_ratio = con_s / seq_s
        mem_ratio = con_peak / max(seq_peak, 1 << 20)
        # "no more than one after another", with room for this machine's noise
        fine = time_ratio <= 1.25 and mem_ratio <= 1.5
        ok = ok and fine
        print(f"{f'{k} one after another':<22} {seq_s:8.2f} {seq_peak / 2**20:10.1f}")
        print(
            f"{f'{k} at once':<22} {con_s:8.2f} {con_peak / 2**20:10.1f}  "
            f"time {time_ratio:.2f}x, memory {mem_ratio:.2f}x {'PASS' if fine else 'FAIL'}"
        )
        rows.append(
            {
                "k": k,
                "seconds_sequential": seq_s,
                "seconds_at_once": con_s,
                "peak_bytes_sequential": seq_peak,
                "peak_bytes_at_once": con_peak,
            }
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "concurrent.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
