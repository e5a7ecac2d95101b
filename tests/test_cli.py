"""``python -m memscope report`` in real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import memscope


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memscope", *args], capture_output=True, text=True, timeout=120
    )


def test_report_of_this_process() -> None:
    out = run("report")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("memscope snapshot 'report' pid")
    for name in ("[process]", "[gc]", "[threads]", "[tracked]"):
        assert name in out.stdout


def test_deep_report_json() -> None:
    out = run("report", "--deep", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == 1
    assert {"census", "containers", "large_objects"} <= set(data["sections"])


def test_report_of_a_saved_file_and_compare(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    memscope.save(memscope.snapshot(label="one", collectors=["gc", "threads"]), path)
    keep = [object() for _ in range(10)]
    memscope.save(memscope.snapshot(label="two", collectors=["gc", "threads"]), path)
    out = run("report", str(path))
    assert out.returncode == 0, out.stderr
    assert "memscope snapshot 'two'" in out.stdout
    out = run("report", str(path), "--compare")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("memscope diff 'one' -> 'two'")
    del keep


def test_compare_json_is_json(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    memscope.save(memscope.snapshot(label="one", collectors=["gc"]), path)
    memscope.save(memscope.snapshot(label="two", collectors=["gc"]), path)
    out = run("report", str(path), "--compare", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # not a Python repr
    assert data["a"]["label"] == "one" and data["b"]["label"] == "two"
    assert set(data["sections"]) == {"gc"}


def test_errors_are_one_line_with_exit_code(tmp_path: Path) -> None:
    out = run("report", str(tmp_path / "missing.jsonl"))
    assert out.returncode == 2
    assert out.stderr.startswith("memscope report: error: cannot read")
    assert "Traceback" not in out.stderr
    out = run("report", "--top", "0")
    assert out.returncode == 2 and "--top must be >= 1" in out.stderr
    out = run("nonsense")
    assert out.returncode == 2
    out = run("--help")
    assert out.returncode == 0 and "report" in out.stdout
