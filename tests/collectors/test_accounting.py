"""The accounting collector: RSS in parts, checked on real allocations of this process."""

from __future__ import annotations

import gc
import json
import mmap
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import memscope
from memscope._base.collector import CollectorUnavailable, snapshot_depth
from memscope._base.libc import libc_info, parse_pymalloc_stats, pymalloc_stats_text
from memscope.collectors.accounting import (
    ARENA_WALK_BUDGET_SECONDS,
    AccountingCollector,
    AccountingSection,
    arena_figures,
    read_status,
    rss_parts,
)

MiB = 1 << 20
linux_only = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="the RSS parts come from Linux's /proc"
)
needs_glibc = pytest.mark.skipif(
    not libc_info().has_mallinfo2, reason="mallinfo2() needs glibc >= 2.33"
)

STATUS = """\
Name:\tpython
VmPeak:\t  500000 kB
VmRSS:\t    3000 kB
RssAnon:\t    2000 kB
RssFile:\t     900 kB
RssShmem:\t     100 kB
Threads:\t1
"""


def _fake_status(tmp_path: Path, text: str = STATUS) -> str:
    path = tmp_path / "status"
    path.write_text(text)
    return str(path)


def _no_pymalloc() -> str | None:
    return None


def test_parts_from_a_status_file_add_up(tmp_path: Path) -> None:
    mallinfo = {"uordblks": 300 << 10, "hblkhd": 200 << 10, "fordblks": 100 << 10}
    collector = AccountingCollector(
        status_path=_fake_status(tmp_path),
        mallinfo=lambda: mallinfo,
        pymalloc_text=lambda: (
            "# arenas allocated current           =                    1\n"
            "1 arenas * 1048576 bytes/arena            =            1,048,576\n"
        ),
    )
    data = collector.collect()
    assert data["rss_bytes"] == 3000 << 10
    assert data["anon_bytes"] + data["file_bytes"] + data["shmem_bytes"] == data["rss_bytes"]
    assert data["malloc_in_use_bytes"] == 500 << 10
    assert data["malloc_mmap_bytes"] == 200 << 10
    assert data["python_arenas_bytes"] == 1 << 20
    # anonymous = arenas + malloc in use + malloc free + unexplained
    assert data["unexplained_bytes"] == (2000 << 10) - (1 << 20) - (600 << 10)
    assert data["note"] is None
    json.dumps(data)
    lines = AccountingSection(data).summary_lines()
    assert lines[0].startswith("RSS 2.9 MiB = anonymous 2.0 MiB (67%)")
    assert any(line.startswith("most of RSS is pymalloc arenas (1.0 MiB, 34%)") for line in lines)


def test_unexplained_is_never_negative_and_the_excess_is_named(tmp_path: Path) -> None:
    collector = AccountingCollector(
        status_path=_fake_status(tmp_path),
        mallinfo=lambda: {"uordblks": 0, "hblkhd": 0, "fordblks": 10 * MiB},
        pymalloc_text=_no_pymalloc,
    )
    data = collector.collect()
    assert data["unexplained_bytes"] == 0
    assert "exceed anonymous memory by 8.0 MiB" in data["note"]
    assert data["python_arenas_bytes"] is None
    assert "pymalloc is not the object allocator" in data["pymalloc_note"]


def test_missing_sources_degrade_into_notes(tmp_path: Path) -> None:
    def broken() -> dict[str, int]:
        raise OSError("simulated")

    data = AccountingCollector(
        status_path=_fake_status(tmp_path), mallinfo=broken, pymalloc_text=_no_pymalloc
    ).collect()
    assert data["malloc_in_use_bytes"] is None
    assert data["malloc_note"] == "mallinfo2() failed: OSError: simulated"
    assert data["unexplained_bytes"] == data["anon_bytes"]
    lines = AccountingSection(data).summary_lines()
    assert "mallinfo2() failed: OSError: simulated" in lines
    assert lines[-1].startswith("most of RSS is unexplained")

    data = AccountingCollector(
        status_path=_fake_status(tmp_path), mallinfo=lambda: None, pymalloc_text=_no_pymalloc
    ).collect()
    assert "glibc 2.33 or later" in data["malloc_note"]


def test_unavailable_without_proc(tmp_path: Path) -> None:
    missing = AccountingCollector(status_path=str(tmp_path / "nope"))
    assert "does not exist" in (missing.available() or "")
    with pytest.raises(CollectorUnavailable, match="Linux's /proc"):
        missing.collect()
    old_kernel = AccountingCollector(status_path=_fake_status(tmp_path, "VmRSS:\t 10 kB\n"))
    with pytest.raises(CollectorUnavailable, match="no RssAnon"):
        old_kernel.collect()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="arenas_max_age"):
        AccountingCollector(arenas_max_age=-1)
    with pytest.raises(TypeError, match="arenas_max_age"):
        AccountingCollector(arenas_max_age="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="status_path"):
        AccountingCollector(status_path=3)  # type: ignore[arg-type]


def test_a_slow_arena_walk_is_reused_by_cheap_snapshots(tmp_path: Path) -> None:
    calls: list[float] = []
    now = [100.0]

    def slow_text() -> str:
        calls.append(now[0])
        end = time.perf_counter() + 5 * ARENA_WALK_BUDGET_SECONDS
        while time.perf_counter() < end:  # a heap whose walk really costs this much
            pass
        return f"# arenas allocated current = {len(calls)}\n"

    collector = AccountingCollector(
        arenas_max_age=10.0,
        status_path=_fake_status(tmp_path),
        mallinfo=lambda: None,
        pymalloc_text=slow_text,
        clock=lambda: now[0],
    )
    assert collector.collect()["python_arenas"] == 1  # the first walk is never timed
    assert collector.collect()["python_arenas"] == 2
    now[0] += 4.0
    reused = collector.collect()
    assert (reused["python_arenas"], reused["python_arenas_age_seconds"]) == (2, 4.0)
    token = snapshot_depth.set("deep")
    try:
        assert collector.collect()["python_arenas"] == 3  # deep snapshots always walk
    finally:
        snapshot_depth.reset(token)
    now[0] += 10.5
    assert collector.collect()["python_arenas"] == 4  # too old: walked again
    assert len(calls) == 4


def test_arena_figures_match_the_full_parser() -> None:
    text = pymalloc_stats_text()
    if text is None:
        pytest.skip("pymalloc is not the object allocator here")
    parsed = parse_pymalloc_stats(text)
    figures = arena_figures(text)
    assert figures is not None
    assert figures == (
        parsed["arenas"],
        parsed["arena_size_bytes"],
        parsed["used_bytes"],
        parsed["free_bytes"],
    )
    assert arena_figures("nothing here") is None


PINNED_TEXT = """\
# arenas allocated current           =                   40
40 arenas * 1048576 bytes/arena            =           41,943,040

# bytes in allocated blocks          =            2,000,000
# bytes in available blocks          =           30,000,000
500 unused pools * 16384 bytes       =            8,192,000
"""


def test_pinned_arenas_are_named_with_what_helps(tmp_path: Path) -> None:
    status = STATUS.replace("2000 kB", "50000 kB").replace("3000 kB", "51000 kB")
    data = AccountingCollector(
        status_path=_fake_status(tmp_path, status),
        mallinfo=lambda: None,
        pymalloc_text=lambda: PINNED_TEXT,
    ).collect()
    assert (data["python_arena_used_bytes"], data["python_arena_free_bytes"]) == (
        2_000_000,
        38_192_000,
    )
    lines = AccountingSection(data).summary_lines()
    assert "pymalloc arenas hold 1.9 MiB of live small objects and 36.4 MiB free" in lines
    assert lines[-1].startswith("pymalloc arenas are pinned: 40 arenas hold 40.0 MiB")
    assert "PYTHONMALLOC=malloc" in lines[-1]


def _parts(collector: AccountingCollector) -> dict[str, int]:
    gc.collect()
    return {k: v for k, v in collector.collect().items() if isinstance(v, int)}


@linux_only
@needs_glibc
def test_a_big_bytearray_moves_anonymous_and_malloc_in_use() -> None:
    collector = AccountingCollector()
    before = _parts(collector)
    block = bytearray(64 * MiB)  # zero-filled: every page is touched, so resident
    during = _parts(collector)
    del block
    after = _parts(collector)
    assert 56 * MiB < during["anon_bytes"] - before["anon_bytes"] < 80 * MiB
    assert 63 * MiB < during["malloc_in_use_bytes"] - before["malloc_in_use_bytes"] < 66 * MiB
    assert 56 * MiB < during["rss_bytes"] - before["rss_bytes"] < 80 * MiB
    assert abs(during["file_bytes"] - before["file_bytes"]) < 8 * MiB
    # a block that big is mmap'd on its own and unmapped at once when freed
    assert during["anon_bytes"] - after["anon_bytes"] > 56 * MiB


@linux_only
def test_a_mapped_file_moves_file_backed(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(MiB) * 32)
    collector = AccountingCollector()
    before = _parts(collector)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        touched = sum(mapped[i] for i in range(0, len(mapped), mmap.PAGESIZE))
        during = _parts(collector)
        whole = collector.collect()
    # the mapped file is its own part of RSS, and the parts still add up
    assert _sizes(whole)["file"] == whole["file_bytes"] > 28 * MiB
    assert sum(_sizes(whole).values()) == whole["rss_bytes"]
    assert touched >= 0
    assert 28 * MiB < during["file_bytes"] - before["file_bytes"] < 40 * MiB
    assert abs(during["anon_bytes"] - before["anon_bytes"]) < 8 * MiB


@linux_only
def test_shared_anonymous_memory_moves_shmem() -> None:
    collector = AccountingCollector()
    before = _parts(collector)
    with mmap.mmap(-1, 16 * MiB, flags=mmap.MAP_SHARED) as shared:
        for i in range(0, len(shared), mmap.PAGESIZE):
            shared[i] = 1
        during = _parts(collector)
    assert 14 * MiB < during["shmem_bytes"] - before["shmem_bytes"] < 20 * MiB


@linux_only
def test_many_small_objects_move_the_arenas() -> None:
    if pymalloc_stats_text() is None:
        pytest.skip("pymalloc is not the object allocator here")
    collector = AccountingCollector(arenas_max_age=0.0)  # walk every time
    before = _parts(collector)
    small = [(i, i + 1) for i in range(300_000)]  # ~64 bytes each, all from pymalloc
    during = _parts(collector)
    assert during["python_arenas_bytes"] - before["python_arenas_bytes"] > 16 * MiB
    assert during["anon_bytes"] - before["anon_bytes"] > 16 * MiB
    assert during["python_arena_used_bytes"] - before["python_arena_used_bytes"] > 16 * MiB
    survivors = small[::100]  # one in a hundred kept: the arenas stay, mostly free
    del small
    after = _parts(collector)
    assert during["python_arena_used_bytes"] - after["python_arena_used_bytes"] > 12 * MiB
    assert after["python_arena_free_bytes"] - during["python_arena_free_bytes"] > 12 * MiB
    assert after["python_arenas_bytes"] > during["python_arenas_bytes"] - 4 * MiB
    del survivors


@linux_only
def test_in_every_snapshot_and_diffed() -> None:
    before = memscope.snapshot()
    keep = bytearray(32 * MiB)
    after = memscope.snapshot()
    assert "accounting" in before.sections
    changes = {c.key: c for c in memscope.compare(before, after)["accounting"]}
    assert changes["anon_bytes"].delta > 24 * MiB
    assert changes["anon_bytes"].unit == "bytes"
    assert "python_arenas_age_seconds" not in changes
    text = str(after)
    assert "RSS" in text and "where RSS goes" in text
    del keep


@linux_only
def test_the_kernel_parts_sum_to_rss() -> None:
    status = read_status()
    assert (
        status["anon_bytes"] + status["file_bytes"] + status["shmem_bytes"] == status["rss_bytes"]
    )
    assert status["anon_bytes"] > 0 and status["file_bytes"] > 0


def _sizes(section: AccountingSection | dict[str, object]) -> dict[str, int]:
    rows = section["parts"]
    assert isinstance(rows, list)
    return {row["part"]: row["bytes"] for row in rows}


def test_rss_parts_split_the_allocators_by_the_census_and_add_up() -> None:
    figures = {
        "anon_bytes": 100 * MiB,
        "file_bytes": 30 * MiB,
        "shmem_bytes": 2 * MiB,
        "python_arenas_bytes": 40 * MiB,
        "python_arena_used_bytes": 35 * MiB,
        "malloc_in_use_bytes": 30 * MiB,
        "malloc_free_bytes": 5 * MiB,
        "python_objects_bytes": 50 * MiB,
        "thread_stacks_bytes": 3 * MiB,
    }
    parts, excess = rss_parts(figures)
    assert excess == 0
    assert parts == {
        "python_objects": 50 * MiB,
        "pymalloc_free": 5 * MiB,
        "other_native": 15 * MiB,  # arenas' used 35 + malloc's 30, less the objects' 50
        "malloc_free": 5 * MiB,
        "thread_stacks": 3 * MiB,
        "unexplained": 22 * MiB,
        "file": 30 * MiB,
        "shmem": 2 * MiB,
    }
    assert sum(parts.values()) == 132 * MiB
    # without a census the allocators stay whole, as in cheap snapshots
    del figures["python_objects_bytes"], figures["thread_stacks_bytes"]
    parts, _ = rss_parts(figures)
    assert list(parts) == [
        "python_arenas",
        "malloc_in_use",
        "malloc_free",
        "unexplained",
        "file",
        "shmem",
    ]
    assert parts["unexplained"] == 25 * MiB and sum(parts.values()) == 132 * MiB


def test_rss_parts_cut_the_free_space_first_when_the_figures_exceed_anonymous() -> None:
    figures = {
        "anon_bytes": 60 * MiB,
        "file_bytes": MiB,
        "shmem_bytes": 0,
        "python_arenas_bytes": 40 * MiB,
        "python_arena_used_bytes": 20 * MiB,
        "malloc_in_use_bytes": 20 * MiB,
        "malloc_free_bytes": 8 * MiB,
        # the census counts more than the allocators hold: capped at what they hold
        "python_objects_bytes": 45 * MiB,
    }
    parts, excess = rss_parts(figures)
    assert excess == 8 * MiB + 20 * MiB + 40 * MiB - 60 * MiB
    assert parts["malloc_free"] == 0  # gave way first
    assert parts["pymalloc_free"] == 20 * MiB
    assert parts["python_objects"] == 40 * MiB and parts["other_native"] == 0
    assert parts["unexplained"] == 0
    assert min(parts.values()) >= 0 and sum(parts.values()) == 61 * MiB


@linux_only
def test_cheap_parts_add_up_to_rss_with_percentages() -> None:
    data = AccountingCollector().collect()
    sizes = _sizes(data)
    assert sum(sizes.values()) == data["rss_bytes"]
    assert "python_objects" not in sizes and "thread_stacks_bytes" not in data
    total = sum(row["percent"] for row in data["parts"])
    assert 99.0 < total < 101.0
    assert isinstance(data["threads"], int) and data["threads"] >= 1


# a fresh interpreter: exact object totals need no other test's threads making objects
_PLANTED = textwrap.dedent(
    """
    import json, sys
    import memscope
    sys.setswitchinterval(5.0)

    def figures(snap):
        acc, census = snap["accounting"], snap["census"]
        parts = {row["part"]: row["bytes"] for row in acc["parts"]}
        return {
            "objects": acc["python_objects_bytes"],
            "census": census["size_bytes_total"],
            "parts": parts,
            "rss": acc["rss_bytes"],
            "lines": acc.summary_lines(),
        }

    before = figures(memscope.snapshot(deep=True))
    planted = [str(i) * 4 for i in range(200_000)]
    size = sys.getsizeof(planted) + sum(map(sys.getsizeof, planted))
    after = figures(memscope.snapshot(deep=True))
    print(json.dumps({"before": before, "after": after, "planted": size}))
    """
)


@linux_only
@needs_glibc
@pytest.mark.slow
def test_a_deep_snapshots_live_objects_move_with_a_planted_heap() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PLANTED], capture_output=True, text=True, timeout=120, check=True
    )
    out = json.loads(done.stdout)
    before, after, planted = out["before"], out["after"], out["planted"]
    for snap in (before, after):
        # the section reads the census of its own snapshot: the same walk, the same total
        assert snap["objects"] == snap["census"]
        assert sum(snap["parts"].values()) == snap["rss"]
        assert min(snap["parts"].values()) >= 0
        assert "thread_stacks" in snap["parts"]
        assert any(line.startswith("  live Python objects") for line in snap["lines"])
    grown = after["objects"] - before["objects"]
    assert planted * 0.97 < grown < planted * 1.05 + 256 * 1024
    assert after["parts"]["python_objects"] - before["parts"]["python_objects"] > planted * 0.9


@linux_only
def test_a_deep_snapshot_without_a_census_says_so() -> None:
    snap = memscope.snapshot(deep=True, collectors=["accounting"])
    acc = snap["accounting"]
    assert acc["python_objects_bytes"] is None
    assert "no census in this snapshot" in acc["objects_note"]
    sizes = _sizes(acc)
    assert "python_arenas" in sizes and "thread_stacks" in sizes
    assert sum(sizes.values()) == acc["rss_bytes"]
    assert isinstance(acc["smaps"], dict) and acc["smaps"]["pss_bytes"] > 0
    assert acc["deep_seconds"] > 0


def _down(levels: int, ready: threading.Barrier, release: threading.Event) -> object:
    # every level goes through C (map calls the function): the C stack grows with it
    if levels:
        return list(map(_down, [levels - 1], [ready], [release]))
    ready.wait(timeout=60)
    release.wait(timeout=60)
    return None


@linux_only
def test_threads_with_deep_stacks_move_the_thread_stacks_part() -> None:
    collector = AccountingCollector()
    token = snapshot_depth.set("deep")
    try:
        before = collector.collect()
        ready, release = threading.Barrier(5), threading.Event()
        workers = [
            threading.Thread(target=_down, args=(700, ready, release), daemon=True)
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        try:
            ready.wait(timeout=60)
            time.sleep(0.05)  # all four are in their waits: blocked in a futex call
            during = collector.collect()
        finally:
            release.set()
            for worker in workers:
                worker.join(timeout=60)
    finally:
        snapshot_depth.reset(token)
    # ~600 bytes of C stack a level here; 700 levels in each of four threads
    grown = during["thread_stacks_bytes"] - before["thread_stacks_bytes"]
    assert 4 * 128 * 1024 < grown < 4 * 8 * MiB
    assert during["threads_measured"] >= before["threads_measured"] + 4
    assert _sizes(during)["thread_stacks"] == during["thread_stacks_bytes"] or during["note"]
    # a diff names the stacks, and not the restatements of other sections' figures
    changes = {c.key for c in AccountingSection(during).diff(AccountingSection(before))}
    assert {"thread_stacks_bytes", "threads"} <= changes
    assert not {k for k in changes if k.startswith("parts") or k == "python_objects_bytes"}
