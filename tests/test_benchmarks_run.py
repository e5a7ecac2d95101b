"""Every benchmark still runs end to end on small data (speed is never asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

SMOKE = {
    "bench_snapshot.py": ["--scale", "0.02"],
    "bench_cache.py": ["--quick"],
    "bench_sse.py": ["--mb", "1", "--rss-mb", "40", "--repeat", "1"],
    "bench_release.py": ["--quick"],
    "bench_import.py": ["--runs", "1"],
    "bench_monitor.py": ["--seconds", "0.2", "--rounds", "2"],
    "bench_why.py": ["--scale", "0.01", "--rounds", "1"],
    "bench_tracked.py": ["--scale", "0.01"],
    "bench_concurrent.py": ["--scale", "0.02"],
    "bench_compare.py": ["--scale", "0.02", "--rounds", "1"],
    "bench_prometheus.py": ["--caches", "2", "--objects", "1000", "--repeat", "5"],
    "bench_suites.py": ["--local-only", "--repeat", "1"],
}


def test_every_benchmark_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("bench_*.py")}
    # bench_testing runs whole pytest sessions per case; the plugin tests cover its path
    assert scripts - {"bench_testing.py"} == set(SMOKE)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_smoke_run(script: str) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *SMOKE[script]],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=BENCH.parent,
    )
    # exit 1 means "a target was missed", which small smoke data may well do: speed is judged
    # by the full runs, not here; a crash is what this test catches
    assert out.returncode in (0, 1), out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert re.search(r"\d+\.\d+x|= \d+\.\d+", out.stdout), out.stdout[-2000:]  # ratios printed
