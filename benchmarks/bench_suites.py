"""Real test suites under ``--memscope-no-growth`` and pytest-memray, side by side.

Downloads the sdists of a few well-kept pure-Python libraries that ship their own tests
(unittest classes with ``subTest()``, plain pytest functions, fixtures, parametrize) into a
cache outside the repository, and runs each suite, in one run on this machine:

* plainly (``pytest``),
* under ``--memscope-no-growth`` (every test checked with the defaults),
* under ``--memscope-no-growth -n 2`` (pytest-xdist, two workers),
* under pytest-memray (``--memray``: every test's allocations tracked and reported),
* plainly and under ``--memscope-no-growth``, both with ``-W error`` (memscope must add no
  warning: every test keeps its outcome of the plain ``-W error`` run).

It prints each mode's wall time and its ratio to the plain run, the tests memscope flags
(failures that are memscope's verdict, not the test's own outcome), the tests pytest-memray
fails, and every test whose outcome (passed, failed, skipped, xfailed) differs from the
plain run otherwise. Each suite is run ``--repeat`` times; the ratios of every repeat are
printed so their spread shows. Writes benchmarks/results/suites.json (suites_local.json).

    .venv/bin/python benchmarks/bench_suites.py [--repeat 2] [--cache DIR] [--suites a,b]
    .venv/bin/python benchmarks/bench_suites.py --local-only   # a generated suite, no network
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "memscope-bench"


@dataclass(frozen=True)
class Suite:
    """One library's own test suite: where it comes from and how pytest runs it."""

    name: str
    version: str
    tests: str  # the test path, relative to the unpacked sdist
    path: str = ""  # what goes on PYTHONPATH, relative to the unpacked sdist
    args: tuple[str, ...] = ()


SUITES = [
    # unittest TestCase classes, subTest() all over, a few plain pytest tests
    # (less PrimeFunctionTests: test_primes alone runs about 30 s, more than all the rest,
    # and a rerun check of it costs at least its 8 runs whatever the harness does)
    Suite(
        "more-itertools",
        "11.2.1",
        "tests",
        args=("--deselect", "tests/test_recipes.py::PrimeFunctionTests"),
    ),
    # unittest TestCase classes and mixins shared by many cache types, threads
    Suite("cachetools", "8.0.2", "tests", path="src"),
    # plain pytest functions, parametrize and a few fixtures
    Suite("toolz", "1.2.0", "toolz/tests"),
]

LOCAL_SUITE = """
import unittest
import pytest

KEPT = []

class Values(unittest.TestCase):
    def setUp(self):
        self.data = list(range(10))

    def test_sub(self):
        for i in self.data:
            with self.subTest(i=i):
                self.assertGreaterEqual(i, 0)

    @unittest.skip("skipped on purpose")
    def test_skipped(self):
        pass

@pytest.fixture
def table():
    return {str(i): i for i in range(50)}

@pytest.mark.parametrize("key", ["1", "2", "3"])
def test_lookup(table, key):
    assert table[key] == int(key)

def test_subtests_fixture(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i < 3

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_fails():
    assert 1 == 2

def test_leaks():
    KEPT.append({"n": [len(KEPT)]})
"""


def fetch(suite: Suite, cache: Path) -> Path:
    """The unpacked sdist of ``suite`` (downloaded with pip into ``cache`` once)."""
    unpacked = cache / "src"
    for found in unpacked.glob("*"):
        if found.name.lower().replace("_", "-") == f"{suite.name}-{suite.version}":
            return found
    sdists = cache / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            "-q",
            "-d",
            str(sdists),
            f"{suite.name}=={suite.version}",
        ],
        check=True,
        timeout=600,
    )
    stem = suite.name.replace("-", "_")
    archive = next(
        p
        for p in sdists.glob("*.tar.gz")
        if p.name.lower().replace("-", "_").startswith(f"{stem}_{suite.version}")
    )
    unpacked.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    return fetch(suite, cache)


@dataclass
class Run:
    """One pytest run: its wall time and each test's outcome."""

    mode: str
    seconds: float
    outcomes: dict[str, str] = field(default_factory=dict)
    memscope: set[str] = field(default_factory=set)  # tests failed by memscope's verdict
    reports: dict[str, str] = field(default_factory=dict)  # memscope's report, per flag
    returncode: int = 0
    tail: str = ""


def _outcomes(junit: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Each test's outcome, and memscope's report for each test its verdict failed."""
    outcomes: dict[str, str] = {}
    flagged: dict[str, str] = {}
    if not junit.exists():
        return outcomes, flagged
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            text = (failure.get("message") or "") + (failure.text or "")
            if "memscope no-growth check of" in text:
                flagged[name] = text[-REPORT_CHARS:]
            outcomes[name] = "failed"
        elif error is not None:
            outcomes[name] = "error"
        elif skipped is not None:
            kind = skipped.get("type", "")
            outcomes[name] = "xfailed" if "xfail" in kind else "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes, flagged


def run_pytest(where: Path, suite_path: str, tests: str, mode: str, extra: list[str]) -> Run:
    """Run pytest on ``tests`` in ``where`` in a fresh interpreter; time the whole run."""
    with tempfile.TemporaryDirectory(prefix="bench_suites_") as tmp:
        junit = Path(tmp) / "junit.xml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (suite_path, env.get("PYTHONPATH")) if p)
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-o",
            "junit_family=xunit1",
            # pytest-asyncio (installed here, not by the suites) warns when this is unset,
            # and a suite with filterwarnings=error (toolz) would stop on that warning
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            f"--junitxml={junit}",
            *extra,
            tests,
        ]
        start = time.perf_counter()
        proc = subprocess.run(
            args, cwd=where, env=env, capture_output=True, text=True, timeout=3600
        )
        seconds = time.perf_counter() - start
        outcomes, flagged = _outcomes(junit)
    return Run(mode, seconds, outcomes, set(flagged), flagged, proc.returncode, proc.stdout[-3000:])


#: how much of each flagged test's report the results keep (its end: the verdict's lines)
REPORT_CHARS = 8000

MODES: list[tuple[str, list[str]]] = [
    ("plain", []),
    ("memscope", ["--memscope-no-growth"]),
    ("memscope -n 2", ["--memscope-no-growth", "-n", "2"]),
    ("pytest-memray", ["--memray"]),
    # plugin hygiene: with every warning an error, memscope must add none of its own, so
    # each test keeps the outcome it has in the plain run under -W error
    ("plain -W error", ["-W", "error"]),
    ("memscope -W error", ["--memscope-no-growth", "-W", "error"]),
]
#: the run each mode's ratio and outcomes are compared with (the plain run otherwise)
BASELINE = {"plain -W error": "plain -W error", "memscope -W error": "plain -W error"}


def bench_suite(
    label: str, where: Path, suite_path: str, tests: str, repeat: int, args: tuple[str, ...] = ()
) -> dict:
    """Every mode, ``repeat`` times, interleaved so that load drifts hit them alike."""
    runs: dict[str, list[Run]] = {mode: [] for mode, _ in MODES}
    for _ in range(repeat):
        for mode, extra in MODES:
            runs[mode].append(run_pytest(where, suite_path, tests, mode, [*args, *extra]))
    rows: dict[str, object] = {"suite": label, "tests": len(runs["plain"][0].outcomes)}
    _print(f"\n== {label}: {rows['tests']} tests")
    _print(f"{'mode':<19}{'wall s (each run)':<25}{'vs its plain (each run)':<30}flagged")
    for mode, _ in MODES:
        plain = runs[BASELINE.get(mode, "plain")]
        base = plain[-1].outcomes
        times = [r.seconds for r in runs[mode]]
        ratios = [r.seconds / p.seconds for r, p in zip(runs[mode], plain, strict=True)]
        last = runs[mode][-1]
        if mode.startswith("memscope"):
            flagged = sorted(last.memscope)
        elif mode.startswith("plain"):
            flagged = []
        else:  # pytest-memray fails a test only on a limit marker; count its extra failures
            flagged = sorted(
                t for t, o in last.outcomes.items() if o == "failed" and base.get(t) != "failed"
            )
        # every other test keeps the outcome it has in the plain run
        changed = sorted(
            f"{t}: {base.get(t)} -> {o}"
            for t, o in last.outcomes.items()
            if t not in last.memscope and base.get(t) != o
        )
        missing = sorted(set(base) - set(last.outcomes))
        _print(
            f"{mode:<19}{' '.join(f'{t:.2f}' for t in times):<25}"
            f"{' '.join(f'{x:.2f}x' for x in ratios):<30}{len(flagged)}"
        )
        for name in flagged[:20]:
            _print(f"    flagged: {name}")
        for line in changed[:10]:
            _print(f"    outcome changed: {line}")
        if missing:
            _print(f"    {len(missing)} tests missing from the report (exit {last.returncode})")
            _print("    " + last.tail.replace("\n", "\n    ")[-1500:])
        rows[mode] = {
            "seconds": times,
            "ratio_to_plain": ratios,
            "flagged": flagged,
            # every repeat's reports, so that a one-off flag can be explained afterwards
            "reports": [r.reports for r in runs[mode] if r.reports],
            "outcome_changed": changed,
            "missing": missing,
        }
    ms = rows["memscope"]["ratio_to_plain"]  # type: ignore[index]
    mr = rows["pytest-memray"]["ratio_to_plain"]  # type: ignore[index]
    strict = rows["memscope -W error"]  # type: ignore[index]
    same = not strict["outcome_changed"] and not strict["missing"]  # type: ignore[index]
    rows["warnings_hygiene"] = same
    _print(
        f"{label}: memscope {min(ms):.2f}x-{max(ms):.2f}x plain, "
        f"pytest-memray {min(mr):.2f}x-{max(mr):.2f}x plain; under -W error every "
        f"test not flagged keeps its plain -W error outcome: {'yes' if same else 'NO'}"
    )
    return rows


def _print(*args: object) -> None:
    print(*args, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the suites; exit 1 if memscope costs over 10x plain or changes an outcome (-W error too)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--suites", default=",".join(s.name for s in SUITES))
    parser.add_argument("--local-only", action="store_true", help="a generated suite only")
    args = parser.parse_args(argv)
    results = []
    if args.local_only:
        with tempfile.TemporaryDirectory(prefix="bench_suites_local_") as tmp:
            where = Path(tmp)
            (where / "test_local.py").write_text(LOCAL_SUITE)
            (where / "pytest.ini").write_text(
                "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
            )
            results.append(bench_suite("local", where, "", "test_local.py", args.repeat))
    else:
        wanted = set(args.suites.split(","))
        for suite in SUITES:
            if suite.name not in wanted:
                continue
            root = fetch(suite, args.cache)
            path = str(root / suite.path) if suite.path else str(root)
            label = f"{suite.name} {suite.version}"
            results.append(bench_suite(label, root, path, suite.tests, args.repeat, suite.args))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "suites_local.json" if args.local_only else "suites.json"
    (out / name).write_text(json.dumps(results, indent=2))
    missed = False
    for row in results:
        # every memscope mode counts: serial, under xdist, and under -W error (against
        # the plain run in the same mode)
        for mode, data in row.items():
            if not (mode.startswith("memscope") and isinstance(data, dict)):
                continue
            if max(data["ratio_to_plain"]) > 10 or data.get("outcome_changed"):
                missed = True
                _print(f"missed: {row.get('suite', '')} {mode}: {max(data['ratio_to_plain']):.2f}x")
        if not row["warnings_hygiene"]:
            missed = True
    _print(
        "\ntarget: every memscope mode <= 10x its plain run, no outcome changed:",
        "missed" if missed else "met",
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
