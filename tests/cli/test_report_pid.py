"""``memscope report --pid``: a real child process seen from outside, in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from memscope._base.cgroup import cgroup_memory
from memscope.cli import CLIError
from memscope.cli._outside import outside_accounting, process_view

from .conftest import Run

MiB = 1 << 20
# b"x" * n writes every page, so the 50 MiB are resident (bytearray(n) would be calloc'ed
# zero pages that never count in RSS); the grandchild holds 20 MiB the same way
GRANDCHILD = "import time; y = b'y' * (20 << 20); print('ready', flush=True); time.sleep(120)"
CHILD = (
    "import subprocess, sys, time\n"
    "x = b'x' * (50 << 20)\n"
    f"p = subprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}], stdout=subprocess.PIPE)\n"
    "p.stdout.readline()\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    """A Python process holding 50 MiB, with a child of its own holding 20 MiB."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        for descendant in psutil.Process(proc.pid).children(recursive=True):
            descendant.kill()
        proc.kill()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


def test_report_pid_sees_the_planted_memory_and_the_children(
    run: Run, child: subprocess.Popen[str]
) -> None:
    out = run("report", "--pid", str(child.pid), "--json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert view["pid"] == child.pid and view["name"].startswith("python")
    assert view["rss_bytes"] >= 50 * MiB
    assert view["vms_bytes"] >= view["rss_bytes"]
    assert view["uss_bytes"] is not None and view["uss_bytes"] >= 50 * MiB  # our own child
    assert view["num_threads"] >= 1 and view["num_fds"] >= 3
    [grandchild] = view["children"]
    assert grandchild["ppid"] == child.pid and grandchild["rss_bytes"] >= 20 * MiB
    assert view["children_count"] == 1
    assert view["children_rss_bytes"] == grandchild["rss_bytes"]
    assert "-c" in grandchild["cmdline"]
    # the child inherited this process's cgroup: read from /proc/PID/cgroup, it is the same one
    own = cgroup_memory()
    if own is None:
        assert view["cgroup"] is None
    else:
        assert view["cgroup"]["path"] == own["path"]
        assert view["cgroup"]["limit_bytes"] == own["limit_bytes"]
        assert view["cgroup"]["usage_bytes"] >= view["rss_bytes"]

    text = run("report", "--pid", str(child.pid))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"memscope process {child.pid} (python")
    assert lines[0].endswith("...") and "import subprocess, sys, time x = " in lines[0]
    assert lines[1].split()[:1] == ["rss"]  # the multi-line -c code stayed on the first line
    assert any(line.split()[:1] == ["rss"] and "MiB" in line for line in lines)
    assert any(line.split()[:2] == ["children", "1"] for line in lines)
    assert any(line.strip().startswith(str(grandchild["pid"])) for line in lines)


def test_a_gone_pid_exits_2(run: Run) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)  # exited and reaped: the pid names no process now
    out = run("report", "--pid", str(proc.pid))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"memscope report: error: --pid {proc.pid}: no such process (gone, or never existed)"
    )


def test_bad_pid_arguments_exit_1(run: Run) -> None:
    out = run("report", "--pid", "abc")
    assert out.returncode == 1 and "--pid takes a process id" in out.stderr
    out = run("report", "--pid", "1", "--deep")
    assert out.returncode == 1 and "--deep does not apply" in out.stderr


class _FakePsutil:
    """Just enough of psutil for process_view to meet a process it may not read."""

    class NoSuchProcess(Exception):
        pass

    class ZombieProcess(NoSuchProcess):
        pass

    class AccessDenied(Exception):
        pass

    def Process(self, pid: int) -> object:
        raise self.AccessDenied(pid)


def test_access_denied_is_exit_2_with_the_cause() -> None:
    with pytest.raises(CLIError) as info:
        process_view(4321, psutil=_FakePsutil())
    assert info.value.code == 2
    assert str(info.value) == "--pid 4321: access denied (run as the process's user, or as root)"


def test_smaps_denied_leaves_uss_unknown_not_an_error() -> None:
    fake = _FakePsutil()

    class Proc:
        pid = 77

        def oneshot(self) -> object:
            return contextlib.nullcontext()

        def memory_info(self) -> object:
            return SimpleNamespace(rss=10 * MiB, vms=20 * MiB)

        def memory_full_info(self) -> object:
            raise fake.AccessDenied(77)

        def name(self) -> str:
            return "daemon"

        def status(self) -> str:
            return "sleeping"

        def num_threads(self) -> int:
            return 4

        def cmdline(self) -> list[str]:
            return ["/usr/sbin/daemon"]

        def num_fds(self) -> int:
            return 9

        def children(self, recursive: bool = False) -> list[object]:
            return []

    fake.Process = lambda pid: Proc()  # type: ignore[method-assign]
    view = process_view(77, psutil=fake)
    assert view["rss_bytes"] == 10 * MiB and view["uss_bytes"] is None
    assert view["full_info"].startswith("access denied")
    assert view["children"] == [] and view["children_rss_bytes"] == 0


# a target with each part planted: 40 MiB of heap, a 16 MiB mapped file read through, and
# three threads deep in C-level recursion (map calls the function at every level)
ACCOUNTED = (
    "import mmap, sys, tempfile, threading, time\n"
    "heap = b'h' * (40 << 20)\n"
    "tmp = tempfile.TemporaryFile()\n"
    "tmp.write(b'f' * (16 << 20)); tmp.flush()\n"
    "mapped = mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ)\n"
    "touched = sum(mapped[i] for i in range(0, len(mapped), mmap.PAGESIZE))\n"
    "ready = threading.Barrier(4)\n"
    "hold = threading.Event()\n"
    "def down(n):\n"
    "    if n:\n"
    "        return list(map(down, [n - 1]))\n"
    "    ready.wait(); hold.wait()\n"
    "for _ in range(3):\n"
    "    threading.Thread(target=down, args=(700,), daemon=True).start()\n"
    "ready.wait(); time.sleep(0.1)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="Linux /proc only")
def test_report_pid_splits_rss_into_parts_that_add_up(run: Run) -> None:
    proc = subprocess.Popen([sys.executable, "-c", ACCOUNTED], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        out = run("report", "--pid", str(proc.pid), "--json")
        text = run("report", "--pid", str(proc.pid))
    finally:
        proc.kill()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert out.returncode == 0, out.stderr
    acc = json.loads(out.stdout)["accounting"]
    parts = {row["part"]: row["bytes"] for row in acc["parts"]}
    assert (
        sum(parts.values())
        == acc["rss_bytes"]
        == (acc["anon_bytes"] + acc["file_bytes"] + acc["shmem_bytes"])
    )
    assert 99.0 < sum(row["percent"] for row in acc["parts"]) < 101.0
    assert parts["other_anon"] >= 40 * MiB
    assert parts["file"] >= 16 * MiB
    assert acc["threads"] == 4
    if acc["threads_measured"] < 4:
        # the stack pointers are ptrace-guarded: the CLI is the target's sibling, which
        # yama's ptrace_scope 1 refuses (root, or scope 0, may read them)
        assert "4 threads measured" in acc["note"] and os.geteuid() != 0
    else:
        assert 3 * 128 * 1024 < parts["thread_stacks"] < 3 * 8 * MiB
    assert acc["smaps"]["pss_bytes"] > 40 * MiB
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    at = lines.index("  where RSS goes (the parts add up to it):")
    assert lines[at + 1].split()[:2] == ["thread", "stacks"]
    assert lines[-1].startswith("    most of RSS is other anonymous")


def test_outside_accounting_without_smaps_keeps_the_kernel_parts(tmp_path: Path) -> None:
    where = tmp_path / "proc" / "55"
    where.mkdir(parents=True)
    (where / "status").write_text(
        "Name:\tdaemon\nVmRSS:\t    3000 kB\nRssAnon:\t    2000 kB\n"
        "RssFile:\t     900 kB\nRssShmem:\t     100 kB\nThreads:\t7\n"
    )
    acc = outside_accounting(55, root=str(tmp_path))
    assert acc is not None
    assert {row["part"]: row["bytes"] for row in acc["parts"]} == {
        "other_anon": 2000 << 10,
        "file": 900 << 10,
        "shmem": 100 << 10,
    }
    assert acc["threads"] == 7 and acc["threads_measured"] is None and acc["smaps"] is None
    assert "smaps is not readable" in acc["note"]
    assert outside_accounting(56, root=str(tmp_path)) is None


SMAPS = """\
55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                 100 kB
VmFlags: rd wr mr mw me ac
7f0000000000-7f0000001000 ---p 00000000 00:00 0
Size:                  4 kB
Rss:                   0 kB
7f0000001000-7f0000801000 rw-p 00000000 00:00 0
Size:               8192 kB
Rss:                 520 kB
VmFlags: rd wr mr mw me ac
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  40 kB
"""


def test_outside_accounting_finds_each_threads_stack_mapping(tmp_path: Path) -> None:
    where = tmp_path / "proc" / "60"
    where.mkdir(parents=True)
    (where / "status").write_text(
        "VmRSS:\t    3000 kB\nRssAnon:\t    2000 kB\nRssFile:\t    1000 kB\n"
        "RssShmem:\t       0 kB\nThreads:\t3\n"
    )
    (where / "smaps").write_text(SMAPS)
    (where / "smaps_rollup").write_text("Rss:  3000 kB\nPss:  2500 kB\nSwap:  12 kB\n")
    syscalls = {
        "60": "7 0x1 0x2 0x3 0x4 0x5 0x6 0x7ffd00020ff0 0x7f00aa",  # main: in [stack]
        "61": "202 0x1 0x2 0x3 0x4 0x5 0x6 0x7f00007ff8c0 0x7f00bb",  # in its 8 MiB stack
        "62": "running",  # no pointer to read
    }
    for tid, text in syscalls.items():
        (where / "task" / tid).mkdir(parents=True)
        (where / "task" / tid / "syscall").write_text(text + "\n")
    acc = outside_accounting(60, root=str(tmp_path))
    assert acc is not None
    parts = {row["part"]: row["bytes"] for row in acc["parts"]}
    assert parts["thread_stacks"] == (520 + 40) << 10  # the two mappings' Rss, not [heap]
    assert parts["other_anon"] == (2000 - 560) << 10
    assert sum(parts.values()) == acc["rss_bytes"] == 3000 << 10
    assert acc["threads"] == 3 and acc["threads_measured"] == 2
    assert "2 of 3 threads measured" in acc["note"]
    assert acc["smaps"] == {
        "rss_bytes": 3000 << 10,
        "pss_bytes": 2500 << 10,
        "swap_bytes": 12 << 10,
    }
