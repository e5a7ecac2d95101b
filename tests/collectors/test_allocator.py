"""The allocator collector on the real allocators of this process (glibc where present)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import memscope
from memscope._base.libc import (
    LibcInfo,
    _stats_via_stderr,
    libc_info,
    mallinfo2,
    parse_pymalloc_stats,
    pinned_arenas_advice,
    pymalloc_stats,
)
from memscope.collectors.allocator import (
    AllocatorCollector,
    AllocatorSection,
)

needs_glibc = pytest.mark.skipif(
    not libc_info().has_mallinfo2,
    reason=f"mallinfo2() needs glibc >= 2.33; this C library is {libc_info().name}",
)
stats_now, stats_note = pymalloc_stats()
needs_pymalloc = pytest.mark.skipif(stats_now is None, reason=f"no pymalloc here: {stats_note}")

# Captured from CPython 3.13.0 on glibc 2.36 after building 300k small strings and
# keeping every 100th: 21 arenas, almost all of them pinned by a few survivors.
CAPTURED_313_PINNED = """\
Small block threshold = 512, in 32 size classes.

class   size   num pools   blocks in use  avail blocks
-----   ----   ---------   -------------  ------------
    0     16           1              27           994
    1     32           2             599           421
    2     48          12            2932          1148
    3     64        1193            8242        295973
    4     80          18            3654            18
    5     96           3             422            88
    6    112           2             218            72
    7    128           3             353            28
    8    144           1              67            46
    9    160           8             719            97
   10    176           1              61            31
   11    192           1              46            39
   12    208           3             175            59
   13    224           3             171            45
   14    240           2              89            47
   15    256           2             102            24
   16    272           2              73            47
   17    288           2              60            52
   18    304           1              46             7
   19    320           2              61            41
   20    336           1              34            14
   21    352           1              32            14
   22    368           1              28            16
   23    384           1              19            23
   24    400           4             124            36
   25    416           1              14            25
   26    432           1              14            23
   27    448           1              13            23
   28    464           1              16            19
   29    480           1              14            20
   30    496           1              10            22
   31    512           1              19            12

# arenas allocated total           =                   21
# arenas reclaimed                 =                    0
# arenas highwater mark            =                   21
# arenas allocated current         =                   21
21 arenas * 1048576 bytes/arena    =           22,020,096

# bytes in allocated blocks        =            1,563,744
# bytes in available blocks        =           19,271,024
51 unused pools * 16384 bytes      =              835,584
# bytes lost to pool headers       =               61,296
# bytes lost to quantization       =               26,304
# bytes lost to arena alignment    =              262,144
Total                              =           22,020,096

arena map counts
# arena map mid nodes              =                    1
# arena map bot nodes              =                    1

# bytes lost to arena map root     =              262,144
# bytes lost to arena map mid      =              262,144
# bytes lost to arena map bot      =              131,072
"""

# Captured from CPython 3.11.7 after building 300k small strings and freeing all of them:
# pymalloc gave 17 of its 20 arenas back.
CAPTURED_311_RECLAIMED = """\
# arenas allocated total           =                   20
# arenas reclaimed                 =                   17
# arenas highwater mark            =                   20
# arenas allocated current         =                    3
3 arenas * 1048576 bytes/arena     =            3,145,728

# bytes in allocated blocks        =              828,816
# bytes in available blocks        =              342,464
117 unused pools * 16384 bytes     =            1,916,928
# bytes lost to pool headers       =                3,456
# bytes lost to quantization       =                4,912
# bytes lost to arena alignment    =               49,152
Total                              =            3,145,728
"""


def test_parse_captured_pinned_output() -> None:
    parsed = parse_pymalloc_stats(CAPTURED_313_PINNED)
    assert parsed["arenas"] == 21
    assert parsed["arenas_allocated_total"] == 21
    assert parsed["arenas_reclaimed_total"] == 0
    assert parsed["arenas_highwater"] == 21
    assert parsed["arena_size_bytes"] == 1 << 20
    assert parsed["arena_bytes"] == 22_020_096
    assert parsed["used_bytes"] == 1_563_744
    assert parsed["free_bytes"] == 19_271_024 + 835_584
    assert parsed["utilisation"] == pytest.approx(1_563_744 / 22_020_096)
    # the arena-map "Total" further down must not overwrite the pymalloc block's numbers
    assert "arena map" not in json.dumps(parsed)


def test_parse_captured_reclaimed_output() -> None:
    parsed = parse_pymalloc_stats(CAPTURED_311_RECLAIMED)
    assert (parsed["arenas"], parsed["arenas_reclaimed_total"]) == (3, 17)
    assert parsed["arena_bytes"] == 3 * (1 << 20)
    assert parsed["unused_pool_bytes"] == 1_916_928
    assert 0.26 < parsed["utilisation"] < 0.27


def test_parse_tolerates_garbage_and_truncation() -> None:
    assert parse_pymalloc_stats("") == {}
    assert parse_pymalloc_stats("no = numbers here\n= 5\nx = 1,2,\n") == {}
    head = CAPTURED_311_RECLAIMED.splitlines()[:4]
    parsed = parse_pymalloc_stats("\n".join(head))
    assert parsed["arenas"] == 3 and "utilisation" not in parsed
    with pytest.raises(TypeError, match="text must be a str"):
        parse_pymalloc_stats(b"bytes")  # type: ignore[arg-type]


@needs_pymalloc
def test_parse_matches_live_stderr_output() -> None:
    """The fd 2 capture path reads the same allocator the in-memory path does."""
    via_stderr = _stats_via_stderr()
    assert via_stderr is not None
    live = parse_pymalloc_stats(via_stderr)
    now, _ = pymalloc_stats()
    assert now is not None
    assert live["arena_size_bytes"] == now["arena_size_bytes"]
    # a few objects come and go between the two calls; arenas are 1 MiB apart
    assert abs(live["arenas"] - now["arenas"]) <= 2


def test_stderr_capture_restores_fd2_across_threads() -> None:
    before = os.fstat(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                _stats_via_stderr()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert errors == []
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_collect_keys_and_json_round_trip() -> None:
    snap = memscope.snapshot(collectors=["allocator"])
    assert snap.errors == {}
    section = snap["allocator"]
    assert isinstance(section, AllocatorSection)
    for key in (
        "libc",
        "heap_in_use_bytes",
        "heap_free_bytes",
        "mmap_bytes",
        "trimmable_bytes",
        "arena_bytes",
        "malloc_note",
        "pymalloc_arenas",
        "pymalloc_arena_bytes",
        "pymalloc_used_bytes",
        "pymalloc_utilisation",
        "allocated_blocks",
    ):
        assert key in section, key
    assert section["allocated_blocks"] > 0
    again = memscope.Snapshot.from_json(snap.to_json())
    assert again["allocator"] == section
    assert isinstance(again["allocator"], AllocatorSection)
    assert section.summary_lines()


def test_allocator_is_cheap_by_default() -> None:
    collector = memscope.registered_collectors()["allocator"]
    assert collector.cost == "cheap"
    assert "allocator" in memscope.snapshot().sections


@needs_glibc
def test_mallinfo2_moves_with_big_malloc_blocks(collected: None) -> None:
    def held() -> int:
        info = mallinfo2()
        assert info is not None
        return info["uordblks"] + info["hblkhd"]

    collector = AllocatorCollector()
    start = collector.collect()
    base = held()
    # 64 distinct 1 MiB blocks: far above pymalloc's 512-byte limit, so all malloc'd
    blocks = [bytes([i]) * (1 << 20) for i in range(64)]
    grown = collector.collect()
    assert held() - base >= 60 << 20
    in_use = grown["heap_in_use_bytes"] + grown["mmap_bytes"]
    assert in_use - (start["heap_in_use_bytes"] + start["mmap_bytes"]) >= 60 << 20
    assert grown["malloc_note"] is None
    del blocks
    shrunk = collector.collect()
    assert in_use - (shrunk["heap_in_use_bytes"] + shrunk["mmap_bytes"]) >= 60 << 20


@needs_pymalloc
def test_pymalloc_numbers_move_with_a_million_small_objects(collected: None) -> None:
    collector = AllocatorCollector()
    start = collector.collect()
    small = [str(i) for i in range(1_000_000)]  # ~50-byte strings: pymalloc blocks
    grown = collector.collect()
    assert grown["allocated_blocks"] - start["allocated_blocks"] >= 1_000_000
    assert grown["pymalloc_used_bytes"] - start["pymalloc_used_bytes"] >= 40 << 20
    assert grown["pymalloc_arenas"] >= start["pymalloc_arenas"] + 40
    assert grown["pymalloc_arena_bytes"] == (
        grown["pymalloc_arenas"] * grown["pymalloc_arena_size_bytes"]
    )
    keep = small[::100]
    del small
    pinned = collector.collect()
    assert pinned["pymalloc_used_bytes"] < grown["pymalloc_used_bytes"] - (35 << 20)
    # every 100th string survives, so most arenas stay allocated: the pinned case
    assert pinned["pymalloc_utilisation"] < 0.5
    text = "\n".join(AllocatorSection(pinned).summary_lines())
    assert "pinned" in text and "PYTHONMALLOC=malloc" in text
    # the C allocator keeps freed memory resident until something trims it: the advice
    # must not send anyone to PYTHONMALLOC=malloc without saying so
    assert "periodic trimming" in text and "MemoryGuard" in text
    del keep


def test_no_mallinfo2_reports_none_with_a_reason() -> None:
    musl = LibcInfo("musl", None, False, False, False, None)
    data = AllocatorCollector(libc=lambda: musl, mallinfo=lambda: None).collect()
    assert data["libc"] == "musl"
    for key in ("heap_in_use_bytes", "heap_free_bytes", "mmap_bytes", "trimmable_bytes"):
        assert data[key] is None
    assert "musl" in data["malloc_note"]
    lines = AllocatorSection(data).summary_lines()
    assert any("musl" in line for line in lines)


def test_a_failing_mallinfo_is_contained() -> None:
    def broken() -> dict[str, int]:
        raise OSError("simulated")

    data = AllocatorCollector(mallinfo=broken).collect()
    assert data["heap_in_use_bytes"] is None
    assert "simulated" in data["malloc_note"]


def test_pymalloc_can_be_switched_off() -> None:
    data = AllocatorCollector(pymalloc=False).collect()
    assert data["pymalloc_arenas"] is None
    assert "pymalloc=False" in data["pymalloc_note"]
    with pytest.raises(TypeError, match="pymalloc must be a bool"):
        AllocatorCollector(pymalloc=1)  # type: ignore[arg-type]


def test_pythonmalloc_malloc_says_pymalloc_is_off() -> None:
    code = textwrap.dedent(
        """
        import json
        from memscope.collectors.allocator import AllocatorCollector
        print(json.dumps(AllocatorCollector().collect()))
        """
    )
    env = dict(os.environ, PYTHONMALLOC="malloc")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["pymalloc_arenas"] is None
    assert "PYTHONMALLOC=malloc" in data["pymalloc_note"]
    assert data["allocated_blocks"] >= 0


def test_pinned_advice_thresholds() -> None:
    pinned = {
        "pymalloc_arenas": 200,
        "pymalloc_arena_bytes": 200 << 20,
        "pymalloc_used_bytes": 10 << 20,
        "pymalloc_utilisation": 0.05,
    }
    advice = pinned_arenas_advice(pinned)
    assert advice is not None
    assert "gunicorn" in advice and "malloc_trim cannot" in advice
    healthy = dict(pinned, pymalloc_used_bytes=190 << 20, pymalloc_utilisation=0.95)
    assert pinned_arenas_advice(healthy) is None
    small = dict(pinned, pymalloc_arena_bytes=8 << 20, pymalloc_arenas=8)
    assert pinned_arenas_advice(small) is None
    assert pinned_arenas_advice({}) is None
    assert not any("pinned" in line for line in AllocatorSection(healthy).summary_lines())


def test_diff_reports_arena_changes_but_not_configuration() -> None:
    before = AllocatorSection(
        {"pymalloc_arenas": 3, "pymalloc_arena_size_bytes": 1 << 20, "allocated_blocks": 10}
    )
    after = AllocatorSection(
        {"pymalloc_arenas": 9, "pymalloc_arena_size_bytes": 1 << 18, "allocated_blocks": 10}
    )
    keys = {change.key for change in after.diff(before)}
    assert keys == {"pymalloc_arenas"}


def test_collect_leaves_no_garbage() -> None:
    collector = AllocatorCollector()
    collector.collect()
    gc.collect()
    blocks = sys.getallocatedblocks()
    for _ in range(200):
        collector.collect()
    gc.collect()
    # no per-call cache or list: 200 calls leave (almost) nothing behind
    assert sys.getallocatedblocks() - blocks < 100
