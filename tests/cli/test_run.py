"""``memscope run``: real scripts run under memscope in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import memscope

SCRIPT = """
import sys, time
print("argv", sys.argv, __name__, flush=True)

class Session:
    def __init__(self):
        self.payload = bytes(2000)

sessions = []  # the planted leak
for _ in range(4):
    sessions.extend(Session() for _ in range(1000))
    time.sleep(0.1)
if sys.argv[1] == "raise":
    raise RuntimeError("boom")
if sys.argv[1] == "wait":
    print("waiting", flush=True)
    time.sleep(120)
sys.exit(int(sys.argv[1]))
"""


def memscope_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memscope", "run", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.slow
def test_run_keeps_argv_and_exit_code_and_names_the_leak(script: Path, tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    out = memscope_run("--interval", "0.1", "--record", str(record), "--", str(script), "7", "x")
    assert out.returncode == 7, out.stderr
    assert out.stdout.splitlines()[0] == f"argv [{str(script)!r}, '7', 'x'] __main__"
    assert "what changed from the start to the exit" in out.stderr
    assert "__main__.Session objects in __main__.sessions" in out.stderr
    snaps = memscope.load(record)
    assert snaps[0].label == "run start" and snaps[-1].label == "run end"
    assert {"census", "containers"} <= set(snaps[-1].sections)
    assert len(snaps) >= 4  # the Monitor's snapshots between them
    sessions = {r["type"]: r["count"] for r in snaps[-1]["census"]["by_type"]}
    assert sessions["__main__.Session"] == 4000


@pytest.mark.slow
def test_run_survives_a_raising_program_and_sigterm(script: Path, tmp_path: Path) -> None:
    record = tmp_path / "raise.jsonl"
    out = memscope_run("--record", str(record), "--", str(script), "raise")
    assert out.returncode == 1
    assert "RuntimeError: boom" in out.stderr and "what changed" in out.stderr
    assert memscope.load(record)[-1].label == "run end"

    record = tmp_path / "term.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memscope", "run", "--record", str(record), "--", script, "wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while proc.stdout.readline().strip() != "waiting":
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "what changed" in err
    assert memscope.load(record)[-1].label == "run end"


def test_run_a_module_with_m(tmp_path: Path) -> None:
    (tmp_path / "tool").mkdir()
    (tmp_path / "tool" / "__init__.py").write_text("")
    (tmp_path / "tool" / "__main__.py").write_text(
        "import sys\nprint('module', __name__, sys.argv[1:])\nsys.exit(4)\n"
    )
    out = memscope_run("--", "-m", "tool", "a", "b", cwd=tmp_path)
    assert out.returncode == 4, out.stderr
    assert out.stdout.strip() == "module __main__ ['a', 'b']"


def test_run_bad_input_exits_1(tmp_path: Path) -> None:
    out = memscope_run()
    assert out.returncode == 1 and "give the program" in out.stderr
    out = memscope_run("--", str(tmp_path / "missing.py"))
    assert out.returncode == 1 and "script: no such file" in out.stderr
    out = memscope_run("--threshold", "rss_bytes", "--", str(tmp_path / "missing.py"))
    assert out.returncode == 1 and "METRIC=VALUE" in out.stderr
