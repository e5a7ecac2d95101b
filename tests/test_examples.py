"""Every example in examples/ runs and exits 0 (pytest example files run under pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))
TEST_FILES = sorted(EXAMPLES.glob("test_*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_example_script_runs(path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=EXAMPLES
    )
    assert out.returncode == 0, f"{path.name} failed:\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip(), f"{path.name} printed nothing"


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_example_test_file_passes_under_pytest(path: Path) -> None:
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES,
        env=env,
    )
    assert out.returncode == 0, f"{path.name} failed:\n{out.stdout}\n{out.stderr}"


def test_the_demo_finds_the_planted_leak() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "leaky_service.py"), "--requests", "5000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Found it: module __main__ attribute _response_cache holds 10,000 entries" in out.stdout
    assert "tracked cache 'responses': len=1,000 (bound 1,000)" in out.stdout
