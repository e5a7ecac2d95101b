"""The process collector: real RSS and children, cgroup v1/v2 on fake /proc + /sys trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import memscope
from memscope.collectors.process import ProcessCollector, ProcessSection, cgroup_memory

GiB = 1 << 30
MiB = 1 << 20
V1_UNLIMITED = "9223372036854771712"

V2_MOUNTINFO = (
    "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate\n"
)
V1_MOUNTINFO = (
    "22 1 259:1 / / rw,relatime - ext4 /dev/root rw\n"
    "31 22 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
    "34 31 0:31 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
)


def _trim() -> None:
    """Return free memory an earlier test left resident: else a new block may reuse it."""
    from memscope.guard import release_memory

    release_memory()


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_tree(root: Path, limit: str = "2147483648", usage: int = 512 * MiB) -> Path:
    write(root, "proc/self/cgroup", "0::/system.slice/app.service\n")
    write(root, "proc/self/mountinfo", V2_MOUNTINFO)
    write(root, "sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n")
    cg = root / "sys/fs/cgroup/system.slice/app.service"
    write(root, "sys/fs/cgroup/system.slice/app.service/memory.max", limit + "\n")
    write(root, "sys/fs/cgroup/system.slice/app.service/memory.current", f"{usage}\n")
    write(root, "sys/fs/cgroup/system.slice/memory.max", "max\n")
    write(root, "sys/fs/cgroup/system.slice/memory.current", f"{usage * 2}\n")
    return cg


def v1_tree(root: Path, limit: str = str(GiB), usage: int = 300 * MiB) -> Path:
    write(root, "proc/self/cgroup", "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    write(root, "proc/self/mountinfo", V1_MOUNTINFO)
    cg = root / "sys/fs/cgroup/memory"
    write(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", limit + "\n")
    write(root, "sys/fs/cgroup/memory/memory.usage_in_bytes", f"{usage}\n")
    return cg


# --- cgroup_memory on fake trees -------------------------------------------------------


def test_cgroup_v2_limit_and_usage(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path)
    assert cgroup_memory(str(tmp_path)) == {
        "version": 2,
        "limit_bytes": 2 * GiB,
        "usage_bytes": 512 * MiB,
        "path": str(cg),
    }


def test_cgroup_v2_max_means_no_limit(tmp_path: Path) -> None:
    v2_tree(tmp_path, limit="max")
    found = cgroup_memory(str(tmp_path))
    assert found is not None
    assert found["version"] == 2
    assert found["limit_bytes"] is None
    assert found["usage_bytes"] == 512 * MiB


def test_cgroup_v2_tightest_ancestor_limit_wins(tmp_path: Path) -> None:
    v2_tree(tmp_path, limit="max")
    write(tmp_path, "sys/fs/cgroup/system.slice/memory.max", f"{GiB}\n")
    found = cgroup_memory(str(tmp_path))
    assert found is not None and found["limit_bytes"] == GiB


def test_cgroup_values_are_reread_each_call(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path)
    assert cgroup_memory(str(tmp_path))["usage_bytes"] == 512 * MiB  # type: ignore[index]
    (cg / "memory.current").write_text(f"{700 * MiB}\n")
    (cg / "memory.max").write_text("max\n")
    found = cgroup_memory(str(tmp_path))
    assert found is not None
    assert found["usage_bytes"] == 700 * MiB
    assert found["limit_bytes"] is None


def test_cgroup_v2_without_memory_controller_is_none(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path)
    (cg / "memory.current").unlink()
    (cg / "memory.max").unlink()
    assert cgroup_memory(str(tmp_path)) is None


def test_cgroup_v1_limit_and_usage(tmp_path: Path) -> None:
    cg = v1_tree(tmp_path)
    assert cgroup_memory(str(tmp_path)) == {
        "version": 1,
        "limit_bytes": GiB,
        "usage_bytes": 300 * MiB,
        "path": str(cg),
    }


def test_cgroup_v1_huge_sentinel_means_no_limit(tmp_path: Path) -> None:
    v1_tree(tmp_path, limit=V1_UNLIMITED)
    found = cgroup_memory(str(tmp_path))
    assert found is not None
    assert found["version"] == 1
    assert found["limit_bytes"] is None
    assert found["usage_bytes"] == 300 * MiB


def test_cgroup_v1_nested_path_under_host_mount(tmp_path: Path) -> None:
    # no cgroup namespace: the mount is the host's root, the process sits deeper
    write(tmp_path, "proc/self/cgroup", "4:memory:/jobs/42\n")
    write(
        tmp_path,
        "proc/self/mountinfo",
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    )
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", V1_UNLIMITED)
    write(tmp_path, "sys/fs/cgroup/memory/jobs/memory.limit_in_bytes", str(3 * GiB))
    write(tmp_path, "sys/fs/cgroup/memory/jobs/42/memory.limit_in_bytes", V1_UNLIMITED)
    write(tmp_path, "sys/fs/cgroup/memory/jobs/42/memory.usage_in_bytes", str(GiB))
    found = cgroup_memory(str(tmp_path))
    assert found is not None
    assert found["path"] == str(tmp_path / "sys/fs/cgroup/memory/jobs/42")
    assert found["limit_bytes"] == 3 * GiB  # the parent's limit binds the child
    assert found["usage_bytes"] == GiB


def test_cgroup_hybrid_prefers_v1_memory_controller(tmp_path: Path) -> None:
    v1_tree(tmp_path)
    write(
        tmp_path,
        "proc/self/mountinfo",
        V1_MOUNTINFO + "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    )
    write(tmp_path, "sys/fs/cgroup/unified/cgroup.controllers", "")
    found = cgroup_memory(str(tmp_path))
    assert found is not None and found["version"] == 1


def test_cgroup_without_mountinfo_uses_usual_mount_point(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path)
    (tmp_path / "proc/self/mountinfo").unlink()
    found = cgroup_memory(str(tmp_path))
    assert found is not None and found["path"] == str(cg) and found["limit_bytes"] == 2 * GiB


def test_cgroup_mount_point_with_escaped_space(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "0::/\n")
    write(tmp_path, "proc/self/mountinfo", "30 22 0:26 / /cg\\040root rw - cgroup2 cgroup2 rw\n")
    write(tmp_path, "cg root/memory.max", f"{GiB}\n")
    write(tmp_path, "cg root/memory.current", "1000\n")
    found = cgroup_memory(str(tmp_path))
    assert found is not None
    assert found["path"] == str(tmp_path / "cg root")
    assert found["limit_bytes"] == GiB


def test_cgroup_move_to_another_cgroup_is_followed(tmp_path: Path) -> None:
    v2_tree(tmp_path)
    write(tmp_path, "sys/fs/cgroup/other/memory.max", f"{GiB}\n")
    write(tmp_path, "sys/fs/cgroup/other/memory.current", "123\n")
    assert cgroup_memory(str(tmp_path))["limit_bytes"] == 2 * GiB  # type: ignore[index]
    write(tmp_path, "proc/self/cgroup", "0::/other\n")
    found = cgroup_memory(str(tmp_path))
    assert found is not None
    assert (found["limit_bytes"], found["usage_bytes"]) == (GiB, 123)


def test_cgroup_found_after_moving_into_one(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "0::/\n")
    write(tmp_path, "proc/self/mountinfo", V2_MOUNTINFO)
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory\n")
    write(tmp_path, "sys/fs/cgroup/limited/memory.max", f"{GiB}\n")
    write(tmp_path, "sys/fs/cgroup/limited/memory.current", "77\n")
    assert cgroup_memory(str(tmp_path)) is None  # the root cgroup has no memory files
    write(tmp_path, "proc/self/cgroup", "0::/limited\n")
    found = cgroup_memory(str(tmp_path))
    assert found is not None and found["limit_bytes"] == GiB


def test_no_proc_means_no_cgroup(tmp_path: Path) -> None:
    # macOS, or a Linux without /proc mounted: None, not an error
    assert cgroup_memory(str(tmp_path)) is None


def test_cgroup_memory_rejects_bad_root() -> None:
    with pytest.raises(TypeError, match="root"):
        cgroup_memory(42)  # type: ignore[arg-type]


def test_cgroup_memory_on_this_machine_is_consistent() -> None:
    found = cgroup_memory()
    if found is None:
        pytest.skip("this machine runs us outside a memory cgroup")
    assert found["version"] in (1, 2)
    assert found["usage_bytes"] is None or found["usage_bytes"] > 0
    assert os.path.isdir(found["path"])


# --- the collector ----------------------------------------------------------------------


def test_psutil_is_not_imported_until_first_collect() -> None:
    code = (
        "import sys, memscope\n"
        "from memscope.collectors.process import ProcessCollector\n"
        "c = ProcessCollector()\n"
        "before = 'psutil' in sys.modules\n"
        "c.collect()\n"
        "print(before, 'psutil' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "True"]


def test_collector_reports_fake_cgroup_and_summary(tmp_path: Path) -> None:
    v2_tree(tmp_path)
    data = ProcessCollector(root=str(tmp_path), children=False).collect()
    assert data["cgroup"]["limit_bytes"] == 2 * GiB
    lines = ProcessSection(data).summary_lines()
    assert any("cgroup v2 limit 2.0 GiB, usage 512.0 MiB (25%)" in line for line in lines)


def test_collector_says_when_there_is_no_cgroup(tmp_path: Path) -> None:
    data = ProcessCollector(root=str(tmp_path), children=False).collect()
    assert data["cgroup"] is None
    assert "no memory cgroup limit" in ProcessSection(data).summary_lines()


def test_rss_grows_with_a_real_allocation() -> None:
    collector = ProcessCollector(children=False)
    _trim()
    before = collector.collect()
    block = b"\x01" * (50 * MiB)  # written, so its pages are resident
    after = collector.collect()
    assert after["rss_bytes"] - before["rss_bytes"] > 40 * MiB
    assert after["pid"] == os.getpid()
    assert after["vms_bytes"] >= after["rss_bytes"]
    assert after["num_threads"] >= 1
    assert after["num_fds"] is None or after["num_fds"] > 0
    assert 0 < after["percent"] < 100
    assert 0 < after["system"]["available_bytes"] <= after["system"]["total_bytes"]
    assert after["uss_bytes"] is None  # only on request
    del block


def test_uss_on_request() -> None:
    data = ProcessCollector(uss=True, children=False).collect()
    assert isinstance(data["uss_bytes"], int)
    assert 0 < data["uss_bytes"] <= data["rss_bytes"]


HOLD = (
    "import sys, time\n"
    "x = b'x' * ({mib} << 20)\n"
    "{spawn}"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


@pytest.fixture
def kids() -> Iterator[list[subprocess.Popen[str]]]:
    """Start real children; kill and reap them all afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
    for proc in started:
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def spawn(kids: list[subprocess.Popen[str]], mib: int, grandchild_mib: int = 0) -> int:
    spawn_code = ""
    if grandchild_mib:
        inner = HOLD.format(mib=grandchild_mib, spawn="")
        spawn_code = (
            "import subprocess\n"
            f"g = subprocess.Popen([sys.executable, '-c', {inner!r}], stdout=subprocess.PIPE)\n"
            "g.stdout.readline()\n"
        )
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(mib=mib, spawn=spawn_code)],
        stdout=subprocess.PIPE,
        text=True,
    )
    kids.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc.pid


def test_children_agree_with_psutil() -> None:
    # usually none here (the waitid fast path); other tests' leftovers must not break it
    expected = {p.pid for p in psutil.Process().children(recursive=True)}
    data = ProcessCollector().collect()
    assert {row["pid"] for row in data["children"]} == expected
    assert data["children_count"] == len(expected)
    if not expected:
        assert data["children_rss_bytes"] == 0


def test_real_children_and_grandchildren(kids: list[subprocess.Popen[str]]) -> None:
    a = spawn(kids, 30)
    b = spawn(kids, 40, grandchild_mib=20)
    grandchild = psutil.Process(b).children()[0].pid
    data = ProcessCollector().collect()
    rows = {row["pid"]: row for row in data["children"]}
    assert {a, b, grandchild} <= rows.keys()
    assert data["children_count"] == len(psutil.Process().children(recursive=True)) >= 3
    assert rows[a]["rss_bytes"] > 25 * MiB
    assert rows[b]["rss_bytes"] > 35 * MiB
    assert rows[grandchild]["rss_bytes"] > 15 * MiB
    assert data["children_rss_bytes"] == sum(r["rss_bytes"] for r in data["children"])
    assert "b'x' * (30 << 20)" in rows[a]["cmdline"]
    assert rows[a]["name"].startswith("python")
    # largest first
    sizes = [r["rss_bytes"] for r in data["children"]]
    assert sizes == sorted(sizes, reverse=True)
    lines = ProcessSection(data).summary_lines()
    assert any(line.startswith(f"{data['children_count']} child processes") for line in lines)
    assert len(lines) <= 6


def test_children_rows_bounded_but_totals_cover_all(kids: list[subprocess.Popen[str]]) -> None:
    spawn(kids, 10)
    big = spawn(kids, 40)
    data = ProcessCollector(max_children=1, cmdline_max=20).collect()
    assert data["children_count"] >= 2
    assert [row["pid"] for row in data["children"]] == [big]  # the largest one is kept
    assert data["children_rss_bytes"] > data["children"][0]["rss_bytes"]
    assert len(data["children"][0]["cmdline"]) <= 20
    assert data["children"][0]["cmdline"].endswith("...")


class VanishingChildren:
    """A real psutil.Process of this process whose children() includes a dead process."""

    def __init__(self, dead: psutil.Process) -> None:
        self._real = psutil.Process()
        self._dead = dead
        self.pid = self._real.pid

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def children(self, recursive: bool = False) -> list[psutil.Process]:
        return [self._dead, *self._real.children(recursive=recursive)]


def test_child_that_vanished_mid_read_is_skipped(kids: list[subprocess.Popen[str]]) -> None:
    live = spawn(kids, 5)
    doomed = subprocess.Popen([sys.executable, "-c", "pass"])
    handle = psutil.Process(doomed.pid)
    doomed.wait(timeout=10)  # exited and reaped: the handle now points at nothing
    others = len(psutil.Process().children(recursive=True))
    data = ProcessCollector(proc=VanishingChildren(handle)).collect()
    pids = [row["pid"] for row in data["children"]]
    assert live in pids and doomed.pid not in pids
    assert data["children_count"] == others


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_process_is_recreated_after_fork() -> None:
    collector = ProcessCollector(children=False)
    assert collector.collect()["pid"] == os.getpid()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what the inherited collector sees, then leave at once
        try:
            os.write(write_fd, str(collector.collect()["pid"]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        reported = fh.read()
    os.waitpid(pid, 0)
    assert reported == str(pid)


def test_snapshot_round_trip_and_compare(kids: list[subprocess.Popen[str]]) -> None:
    spawn(kids, 5)
    _trim()
    a = memscope.snapshot(label="a", collectors=["process"])
    block = b"\x02" * (20 * MiB)
    b = memscope.snapshot(label="b", collectors=["process"])
    assert not a.errors and not b.errors
    assert isinstance(b["process"], ProcessSection)
    json.dumps(b.to_dict())
    again = memscope.Snapshot.from_dict(json.loads(b.to_json()))
    assert again == b and isinstance(again["process"], ProcessSection)
    diff = memscope.compare(a, b)
    assert not diff.errors
    assert diff.delta("process", "rss_bytes") > 15 * MiB
    del block


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_children": -1}, ValueError, "max_children"),
        ({"max_children": 2.5}, TypeError, "max_children"),
        ({"cmdline_max": 3}, ValueError, "cmdline_max"),
        ({"uss": "yes"}, TypeError, "uss"),
        ({"root": 7}, TypeError, "root"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ProcessCollector(**kwargs)
