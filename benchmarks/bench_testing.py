"""Leak-test accuracy and cost: memscope's no_growth marker vs pytest-memray's limit_leaks.

Both run the same accuracy cases (tests/testing/growth_cases.py) as a generated pytest
module, each in its own pytest subprocess, so both pay the same pytest start-up and
fixture costs. Prints one row per case (expected verdict, each tool's verdict, each
tool's time for that test) and the totals; writes benchmarks/results/bench_testing.json.

    .venv/bin/python benchmarks/bench_testing.py [--limit "1 KB"]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "testing"))

import growth_cases as cases  # noqa: E402

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def run_suite(
    where: Path, marker: str, extra_args: list[str]
) -> tuple[dict[str, tuple[str, float]], float, str]:
    """Run the generated module; return {case: (verdict, seconds)}, wall seconds, output."""
    where.mkdir()
    shutil.copy(ROOT / "tests" / "testing" / "growth_cases.py", where / "growth_cases.py")
    (where / "test_cases.py").write_text(cases.pytest_module_source(marker))
    (where / "pytest.ini").write_text(INI)
    junit = where / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={junit}",
            *extra_args,
        ],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - start
    out: dict[str, tuple[str, float]] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "").removeprefix("test_")
            if case.find("error") is not None:
                verdict = "error"
            elif case.find("failure") is not None:
                verdict = "leak"
            elif case.find("skipped") is not None:
                verdict = "skipped"
            else:
                verdict = "ok"
            out[name] = (verdict, float(case.get("time", "0")))
    return out, wall, proc.stdout[-3000:] + proc.stderr[-2000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", default="1 KB", help='limit_leaks threshold (default "1 KB")')
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_testing_"))
    try:
        ours, ours_wall, _ = run_suite(tmp / "memscope", "@pytest.mark.no_growth", [])
        try:
            import pytest_memray  # noqa: F401

            theirs, theirs_wall, theirs_out = run_suite(
                tmp / "memray", f"@pytest.mark.limit_leaks({args.limit!r})", ["--memray"]
            )
        except ImportError:
            theirs, theirs_wall, theirs_out = {}, 0.0, "pytest-memray is not installed"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    header = f"{'case':<36} {'expected':<8} {'memscope':<9} {'memray':<9} {'memscope s':>10} {'memray s':>9}"
    print(header)
    print("-" * len(header))
    right = {"memscope": 0, "memray": 0}
    for case_type in cases.CASE_TYPES:
        name = case_type.name
        expected = "leak" if case_type.leaks else "ok"
        mv, mt = ours.get(name, ("missing", 0.0))
        rv, rt = theirs.get(name, ("n/a", 0.0))
        right["memscope"] += mv == expected
        right["memray"] += rv == expected
        mark_m = "" if mv == expected else " x"
        mark_r = "" if rv == expected else " x"
        print(f"{name:<36} {expected:<8} {mv + mark_m:<9} {rv + mark_r:<9} {mt:>10.2f} {rt:>9.2f}")
        rows.append(
            {
                "case": name,
                "expected": expected,
                "memscope": mv,
                "memray": rv,
                "memscope_seconds": mt,
                "memray_seconds": rt,
            }
        )
    n = len(cases.CASE_TYPES)
    print("-" * len(header))
    print(f"{'correct verdicts':<36} {n:<8} {right['memscope']:<9} {right['memray']:<9}")
    print(f"{'wall time of the pytest run (s)':<46} {ours_wall:>10.2f} {theirs_wall:>9.2f}")
    if theirs_wall:
        print(f"time ratio memscope / memray: {ours_wall / theirs_wall:.2f}x")
    if not theirs:
        print("pytest-memray produced no verdicts:\n" + theirs_out)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench_testing.json").write_text(
        json.dumps(
            {
                "limit": args.limit,
                "cases": rows,
                "correct": right,
                "total": n,
                "wall_seconds": {"memscope": ours_wall, "memray": theirs_wall},
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
