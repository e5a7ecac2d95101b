"""The accounting collector: RSS in parts, checked on real allocations of this process."""

from __future__ import annotations

import gc
import json
import mmap
import os
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
