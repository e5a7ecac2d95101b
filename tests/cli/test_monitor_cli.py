"""``memscope monitor``: real processes watched from outside, in subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import memscope

from .conftest import Run

MiB = 1 << 20
# grows by 2 MiB of written pages every 0.25 s, holds a 20 MiB child, exits with code 3
GROWER = (
    "import subprocess, sys, time\n"
    "kid = subprocess.Popen([sys.executable, '-c', "
    "\"import time; x = b'k' * (20 << 20); time.sleep(60)\"])\n"
    "keep = []\n"
    "for i in range(16):\n"
    "    keep.append(b'g' * (2 << 20))\n"
    "    time.sleep(0.25)\n"
    "print('grower done', flush=True)\n"
    "kid.kill(); kid.wait()\n"
    "sys.exit(3)\n"
)


@pytest.mark.slow
def test_monitor_a_command_records_and_exits_0_naming_its_code(run: Run, tmp_path: Path) -> None:
    record = tmp_path / "mon.jsonl"
    out = run(
        "monitor", "--interval", "0.3", "--record", str(record), "--", sys.executable, "-c", GROWER
    )
    assert out.returncode == 0, out.stderr  # the target exited: the summary, and 0
    lines = out.stdout.splitlines()
    assert "grower done" in lines  # the command's own output passes through
    samples = [line for line in lines if line.strip().split()[1:2] == ["rss"]]
    assert len(samples) >= 5
    assert any(line.strip().startswith(("children",)) for line in lines)
    assert any("the command exited with code 3" in line for line in lines)
    snaps = memscope.load(record)
    assert len(snaps) == len(samples)
    rss = [s["process"]["rss_bytes"] for s in snaps]
    assert max(rss) - rss[0] >= 10 * MiB  # the planted growth, seen from outside
    assert max(s["process"]["children_rss_bytes"] for s in snaps) >= 20 * MiB
    # the record is what show, diff and plot read
    shown = run("show", f"{record}:-1", "--top", "2")
    assert shown.returncode == 0 and "(seen from outside)" in shown.stdout.splitlines()[0]


@pytest.mark.slow
def test_monitor_json_summary_and_a_pid_that_exits(run: Run) -> None:
    target = subprocess.Popen([sys.executable, "-c", GROWER], stdout=subprocess.DEVNULL)
    try:
        out = run("monitor", "--pid", str(target.pid), "--interval", "0.3", "--json")
    finally:
        target.wait(timeout=120)
    assert out.returncode == 0, out.stderr  # the target exited: the summary, and 0
    data = json.loads(out.stdout)  # ONE object, nothing else on stdout
    assert data["pid"] == target.pid and data["end"] == "the process exited"
    assert len(data["samples"]) >= 5
    assert all(
        set(row) >= {"timestamp", "rss_bytes", "children_rss_bytes"} for row in data["samples"]
    )
    stamps = [row["timestamp"] for row in data["samples"]]
    assert stamps == sorted(stamps) and isinstance(stamps[0], float)
    summary = data["summary"]
    keys = {"start_rss_bytes", "end_rss_bytes", "peak_rss_bytes", "growth_bytes_per_minute"}
    assert set(summary) >= keys | {"steady"}
    assert summary["start_rss_bytes"] == data["samples"][0]["rss_bytes"]
    assert summary["end_rss_bytes"] == data["samples"][-1]["rss_bytes"]
    assert summary["peak_rss_bytes"] == max(row["rss_bytes"] for row in data["samples"])
    assert summary["peak_rss_bytes"] - summary["start_rss_bytes"] >= 10 * MiB
    assert summary["growth_bytes_per_minute"] > 10 * MiB
    assert isinstance(summary["steady"], bool)
    # the children too: the 20 MiB child is seen at its peak
    assert summary["peak_children_rss_bytes"] >= 20 * MiB
    assert summary["peak_children_rss_bytes"] == max(
        row["children_rss_bytes"] for row in data["samples"]
    )


def test_monitor_a_pid_missing_at_the_start_exits_2(run: Run) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    out = run("monitor", "--pid", str(gone.pid), "--interval", "0.2", "--json")
    assert out.returncode == 2
    assert out.stdout == ""  # no summary of nothing
    assert out.stderr.strip() == (
        f"memscope monitor: error: --pid {gone.pid}: no such process (gone, or never existed)"
    )


def test_monitor_a_command_that_ends_at_once_still_prints_the_json_keys(run: Run) -> None:
    out = run("monitor", "--json", "--interval", "5", "--", sys.executable, "-c", "pass")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["end"] == "the command exited with code 0" and data["exit_code"] == 0
    assert set(data["summary"]) >= {"start_rss_bytes", "peak_rss_bytes", "steady"}


@pytest.mark.slow
def test_monitor_stops_on_ctrl_c_and_after_duration(run: Run) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        out = run("monitor", "--pid", str(sleeper.pid), "--interval", "0.2", "--duration", "1")
        assert out.returncode == 0, out.stderr
        assert "(duration reached)" in out.stdout
        assert 2 <= sum(" rss " in line for line in out.stdout.splitlines()) <= 8

        watcher = subprocess.Popen(
            [sys.executable, "-m", "memscope", "monitor", "--pid", str(sleeper.pid)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watcher.stdout is not None
        assert " rss " in watcher.stdout.readline()  # watching
        watcher.send_signal(signal.SIGINT)
        rest, _ = watcher.communicate(timeout=60)
        assert watcher.returncode == 0
        assert "(interrupted)" in rest and "Traceback" not in rest
        assert sleeper.poll() is None  # the watched process is untouched
    finally:
        sleeper.kill()
        sleeper.wait(timeout=60)


def test_monitor_bad_input_exits_1(run: Run) -> None:
    out = run("monitor")
    assert out.returncode == 1 and "exactly one of --pid PID or -- CMD" in out.stderr
    out = run("monitor", "--pid", "1", "--", "true")
    assert out.returncode == 1 and "exactly one of" in out.stderr
    out = run("monitor", "--pid", "1", "--interval", "0")
    assert out.returncode == 1 and "--interval must be > 0" in out.stderr
    out = run("monitor", "--", "/nonexistent/program")
    assert out.returncode == 1 and "cannot start '/nonexistent/program'" in out.stderr


def _in_a_pty(args: list[str], timeout: float = 120) -> str:
    """Run ``python -m memscope ARGS`` on a pseudo-terminal; its output, escapes removed."""
    import os
    import pty
    import re
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout is a TTY
        os.environ["COLUMNS"] = "120"
        os.execv(sys.executable, [sys.executable, "-m", "memscope", *args])
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("utf-8", "replace"))


@pytest.mark.slow
def test_monitor_on_a_tty_draws_a_live_table() -> None:
    pytest.importorskip("rich")
    watched = subprocess.Popen(
        [sys.executable, "-c", "import time; x = b'x' * (30 << 20); time.sleep(120)"]
    )
    try:
        text = _in_a_pty(
            ["monitor", "--pid", str(watched.pid), "--interval", "0.3", "--duration", "1.5"]
        )
    finally:
        watched.kill()
        watched.wait(timeout=60)
    assert f"memscope monitor: pid {watched.pid}" in text
    assert "since start" in text and "RSS" in text  # the table's header
    table_rows = [line for line in text.splitlines() if line.startswith("│")]
    assert any(f"│ {watched.pid} │ python" in line and "MiB" in line for line in table_rows)
    assert "━" in text  # the duration's progress bar
    assert "(duration reached)" in text  # and the summary after it
