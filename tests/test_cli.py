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
    for name in ("[process]", "[gc]", "[threads]", "[tracked]", "[accounting]"):
        assert name in out.stdout
    # the accounting lines: the parts of RSS, each with its share, and what dominates
    assert "  where RSS goes (the parts add up to it):" in out.stdout
    assert "    free malloc keeps " in out.stdout and "  most of RSS is " in out.stdout


def test_deep_report_json() -> None:
    out = run("report", "--deep", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == 1
    assert {"census", "containers", "large_objects"} <= set(data["sections"])
    acc, census = data["sections"]["accounting"], data["sections"]["census"]
    parts = {row["part"]: row["bytes"] for row in acc["parts"]}
    assert sum(parts.values()) == acc["rss_bytes"]
    # the deep report's live objects are its own census's total (one heap walk)
    assert acc["python_objects_bytes"] == census["size_bytes_total"] > 0
    assert {"python_objects", "other_native", "thread_stacks", "unexplained"} <= set(parts)
    text = run("report", "--deep")
    assert text.returncode == 0, text.stderr
    assert "    live Python objects " in text.stdout


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
    # exit codes: 1 bad input (an argument, a file), 2 a target process gone or denied
    out = run("report", str(tmp_path / "missing.jsonl"))
    assert out.returncode == 1
    assert out.stderr.startswith("memscope report: error: cannot read")
    assert "Traceback" not in out.stderr
    out = run("report", "--top", "0")
    assert out.returncode == 1 and "--top must be >= 1" in out.stderr
    out = run("nonsense")
    assert out.returncode == 1 and "unknown command 'nonsense'" in out.stderr
    out = run("report", "--no-such-flag")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    out = run("--help")
    assert out.returncode == 0 and "report" in out.stdout


def test_a_closed_pipe_ends_quietly() -> None:
    # `memscope report --deep --json | head -1`: the reader leaves before the output ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "memscope", "report", "--deep", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_deep_with_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    memscope.save(memscope.snapshot(collectors=["gc"]), path)
    out = run("report", str(path), "--deep")
    assert out.returncode == 1
    assert "--deep takes a snapshot of this process" in out.stderr


def test_compare_of_a_monitor_record_compares_its_deep_snapshots(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    keep: list[object] = []
    for k in range(5):
        keep.extend(object() for _ in range(1000))
        memscope.save(memscope.snapshot(label=f"s{k}", deep=k in (1, 3)), path)
    out = run("report", str(path), "--compare")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("(snapshots #1 and #3 of 5")
    assert "census: " in out.stdout  # the heap scans were compared
    data = json.loads(run("report", str(path), "--compare", "--json").stdout)
    assert data["indexes"] == [1, 3] and "census" in data["sections"]
    # the text shows the largest changes only: in a big test process another test's
    # garbage collected in between (-44,297 tracked objects in one CI run) can push the
    # 2,000 planted objects out of it, so they are looked for in the whole diff
    census = {row["key"]: row["delta"] for row in data["sections"]["census"]}
    assert census["by_type[object].count"] >= 2000, census
    del keep
