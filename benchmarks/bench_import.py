"""What ``import memscope`` costs a service, against the import of its peers, in fresh interpreters.

Run: .venv/bin/python benchmarks/bench_import.py [--runs 15] [--src DIR]

Each figure is the median over ``--runs`` fresh interpreters, timed inside the child
around the import statement alone (interpreter start-up is not counted):
- fresh: ``import memscope`` in an empty interpreter (the budget: under 40 ms);
- own part: the same after the stdlib modules every service has already loaded
  (typing, collections, dataclasses, logging, json, pathlib, re, threading, inspect):
  what memscope itself adds (the budget: under 10 ms);
- first use: ``import memscope`` plus the first cheap ``snapshot()``, where the lazy
  names load their modules (told, not budgeted: it is paid when memscope is used);
- peers: ``import objgraph``, ``import pympler.asizeof``, ``from guppy import hpy``,
  ``import tracemalloc``, fresh, for scale.
``--src DIR`` measures another checkout's ``src`` (e.g. an older commit in a git worktree).
Writes benchmarks/results/import.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SERVICE_STDLIB = "typing, collections, dataclasses, logging, json, pathlib, re, threading, inspect"

CASES = {
    "fresh": ("", "import memscope"),
    "own part": (f"import {SERVICE_STDLIB}", "import memscope"),
    "first use": ("", "import memscope; memscope.snapshot()"),
    "objgraph": ("", "import objgraph"),
    "pympler.asizeof": ("", "import pympler.asizeof"),
    "guppy3 hpy": ("", "from guppy import hpy"),
    "tracemalloc": ("", "import tracemalloc"),
}


def time_once(setup: str, stmt: str, env: dict[str, str]) -> float:
    code = (
        f"{setup}\nimport time\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.strip().splitlines()[-1]) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per figure")
    parser.add_argument("--src", help="measure memscope from this src directory instead")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src)
    medians: dict[str, float] = {}
    for name, (setup, stmt) in CASES.items():
        times = []
        for _ in range(args.runs):
            try:
                times.append(time_once(setup, stmt, env))
            except subprocess.CalledProcessError:
                break  # a peer that is not installed
        if times:
            medians[name] = statistics.median(times)
    print(f"import cost, median of {args.runs} fresh interpreters each")
    for name, ms in medians.items():
        print(f"  {name:<18} {ms:7.2f} ms")
    fresh, own = medians["fresh"], medians["own part"]
    print(f"budget: fresh {fresh:.2f} ms of 40 ms, own part {own:.2f} ms of 10 ms")
    for peer in ("objgraph", "pympler.asizeof", "guppy3 hpy", "tracemalloc"):
        if peer in medians:
            print(f"import {peer} costs {medians[peer] / fresh:.2f}x import memscope")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "import.json").write_text(json.dumps(medians, indent=2) + "\n")
    return 0 if fresh < 40 and own < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
