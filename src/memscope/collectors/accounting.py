"""The ``accounting`` collector: RSS split into parts that add up to it, in plain words.

The kernel splits resident memory three ways (``RssAnon``, ``RssFile``, ``RssShmem`` in
``/proc/self/status``; they sum to ``VmRSS``). Anonymous memory is then split by who
holds it: pymalloc's arenas (small Python objects), the C allocator's blocks in use and
the free space it keeps (glibc ``mallinfo2()``), and what no allocator accounts for
(thread stacks, C extensions that map memory themselves, the interpreter's own data).

Cheap: one read of /proc/self/status, one mallinfo2() and one walk of pymalloc's arenas
(about a microsecond an arena). When that walk took longer than
``ARENA_WALK_BUDGET_SECONDS``, cheap snapshots reuse its reading for up to
``arenas_max_age`` seconds (``python_arenas_age_seconds`` says how old it is); deep
snapshots always walk again.

Deep snapshots add what costs more: the live Python objects (the census's total, read
from the heap walk the snapshot already made: no second walk), which splits the
allocators' figures into objects, free space and other native heap; the resident thread
stacks (each thread's stack pointer finds its mapping in /proc/self/smaps: ~1.5 ms for a
20 MiB interpreter, growing with RSS); and /proc/self/smaps_rollup's PSS and swap (~0.4 ms).

``parts`` lists the parts of RSS in bytes and percent: they add up to RSS exactly.
Unexplained is the remainder of anonymous memory and never negative; when the
allocators' figures exceed what is resident (free pages trimmed, arena pools never
touched) their free parts are cut by the excess, and ``note`` says by how much.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .._base.collector import CollectorUnavailable, snapshot_depth
from .._base.libc import mallinfo2, pymalloc_stats_text
from .._base.proc import smaps_rollup, thread_stacks
from .._base.units import format_bytes
from .._base.validate import check_number, check_str
from ._rss_parts import ANON_PARTS, PART_WORDS, TOP_PARTS, AccountingSection, rss_parts

__all__ = [
    "ANON_PARTS",
    "ARENA_WALK_BUDGET_SECONDS",
    "PART_WORDS",
    "TOP_PARTS",
    "AccountingCollector",
    "AccountingSection",
    "ArenaFigures",
    "arena_figures",
    "read_status",
    "rss_parts",
]

# a walk of pymalloc's arenas longer than this is reused by cheap snapshots for a while
ARENA_WALK_BUDGET_SECONDS = 100e-6
# the allocators' figures may exceed anonymous memory by this much without a note
NOTE_MIN_EXCESS_BYTES = 1 << 20

_STATUS_FIELDS = {
    b"VmRSS:": "rss_bytes",
    b"RssAnon:": "anon_bytes",
    b"RssFile:": "file_bytes",
    b"RssShmem:": "shmem_bytes",
    b"Threads:": "threads",
}


def read_status(path: str = "/proc/self/status") -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and RssShmem from a /proc status file, in bytes."""
    with open(path, "rb") as fh:
        raw = fh.read()
    out: dict[str, int] = {}
    for line in raw.splitlines():
        field, _, rest = line.partition(b"\t")
        key = _STATUS_FIELDS.get(field)
        if key is not None:
            number, _, unit = rest.strip().partition(b" ")
            out[key] = int(number) * (1024 if unit == b"kB" else 1)
    return out


class ArenaFigures(NamedTuple):
    """What the accounting reads of pymalloc's statistics."""

    arenas: int
    arena_size_bytes: int
    used_bytes: int | None  # in allocated blocks: live small objects
    free_bytes: int | None  # in available blocks and unused pools


def _value_after(text: str, label: str, start: int = 0) -> int | None:
    at = text.find(label, start)
    if at < 0:
        return None
    end = text.find("\n", at)
    raw = text[at : end if end >= 0 else len(text)].rpartition("=")[2].strip()
    try:
        return int(raw.replace(",", ""))
    except ValueError:
        return None


def arena_figures(text: str) -> ArenaFigures | None:
    """Arenas, their size, used and free bytes from pymalloc's statistics, or None if absent.

    A targeted read of five lines (a few microseconds); ``parse_pymalloc_stats`` reads all.
    """
    # the lines come in this order, after the per-size-class table: each search starts
    # where the last one matched
    start = text.find("# arenas allocated current")
    arenas = _value_after(text, "# arenas allocated current", max(start, 0))
    if arenas is None:
        return None
    size = 0
    mark = text.find(" bytes/arena", start)
    if mark >= 0:
        start = text.rfind("*", 0, mark)
        if start >= 0:
            size = int(text[start + 1 : mark].strip())
    if size <= 0:
        size = 1 << 20 if sys.version_info >= (3, 10) else 256 << 10
    used = _value_after(text, "# bytes in allocated blocks", start)
    available = _value_after(text, "# bytes in available blocks", start)
    pools = _value_after(text, " unused pools *", start)
    free = None if available is None and pools is None else (available or 0) + (pools or 0)
    return ArenaFigures(arenas, size, used, free)


class AccountingCollector:
    """RSS split into parts that add up to it (Linux /proc, glibc mallinfo2, pymalloc).

    Thread-safe; absent with a reason where /proc/self/status has no RssAnon.
    """

    name = "accounting"
    cost = "cheap"
    section_type = AccountingSection

    def __init__(
        self,
        *,
        arenas_max_age: float = 10.0,
        status_path: str = "/proc/self/status",
        mallinfo: Callable[[], Mapping[str, int] | None] = mallinfo2,
        pymalloc_text: Callable[[], str | None] = pymalloc_stats_text,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.arenas_max_age = check_number(
            "arenas_max_age", arenas_max_age, low=0.0, unit="seconds"
        )
        self.status_path = check_str("status_path", status_path)
        self._mallinfo = mallinfo
        self._pymalloc_text = pymalloc_text
        self._clock = clock
        # (pid, when read, figures, walk seconds) of the last arena walk; one
        # tuple swapped whole, so threads need no lock (and a fork leaves none held)
        self._arenas: tuple[int, float, ArenaFigures, float] | None = None

    def available(self) -> str | None:
        """Why RSS cannot be split here, or None."""
        if not os.path.exists(self.status_path):
            return f"{self.status_path} does not exist: the RSS parts come from Linux's /proc"
        return None

    def collect(self) -> dict[str, Any]:
        """The parts in bytes; keys whose source is missing are None, with a note why."""
        try:
            status = read_status(self.status_path)
        except OSError as exc:
            raise CollectorUnavailable(
                f"cannot read {self.status_path} ({exc.strerror}): the RSS parts come from "
                "Linux's /proc"
            ) from None
        if "anon_bytes" not in status or "rss_bytes" not in status:
            raise CollectorUnavailable(
                f"{self.status_path} has no RssAnon/VmRSS (Linux 4.5 or later has them)"
            )
        data: dict[str, Any] = dict.fromkeys(("rss_bytes", *TOP_PARTS), 0)
        data.update(status)
        data.update(self._malloc_part())
        data.update(self._arena_part())
        if snapshot_depth.get() == "deep":
            data.update(self._deep_part(data))
        parts, excess = rss_parts(data)
        rss = sum(parts.values())  # anonymous + file + shmem: VmRSS, read in the same read
        data["unexplained_bytes"] = parts["unexplained"]
        data["parts"] = [
            {"part": name, "bytes": size, "percent": round(100 * size / rss, 1) if rss else 0.0}
            for name, size in parts.items()
        ]
        data["note"] = None
        # a last arena's untouched pools and trimmed free pages are counted but not
        # resident: worth a word only once the excess is more than rounding
        anon = data["anon_bytes"]
        if excess > max(NOTE_MIN_EXCESS_BYTES, anon // 100):
            data["note"] = (
                f"the allocators' figures exceed anonymous memory by "
                f"{format_bytes(excess)}: part of their free space is not resident "
                "(trimmed pages, arena pools never touched); the free parts are cut by that"
            )
        return data

    def _deep_part(self, figures: Mapping[str, Any]) -> dict[str, Any]:
        """Live objects (this snapshot's heap walk), thread stacks and smaps_rollup."""
        started = time.perf_counter()
        from ._heap import current_scan  # the heap walk's module: only deep snapshots need it

        out: dict[str, Any] = {"python_objects_bytes": None, "objects_note": None}
        scan = current_scan()
        if scan is None:
            out["objects_note"] = (
                "no census in this snapshot: live objects are not split from the allocators"
            )
        else:
            total = sum(size for _, size in scan.tally.values())
            out["python_objects_bytes"] = total
            allocated = (figures.get("python_arena_used_bytes") or 0) + (
                figures.get("malloc_in_use_bytes") or 0
            )
            if not scan.complete:
                out["objects_note"] = (
                    "the census counted gc-tracked objects only: str, int, bytes and the "
                    "like are in other native heap"
                )
            elif allocated and total - allocated > max(NOTE_MIN_EXCESS_BYTES, allocated // 100):
                out["objects_note"] = (
                    f"the census counts {format_bytes(total - allocated)} more than the "
                    "allocators hold: objects outside the heap (static types, memory a C "
                    "extension maps itself) overlap other parts"
                )
        stacks = None
        try:
            stacks = thread_stacks()
        except Exception as exc:  # contained: the other parts stand
            out["stacks_note"] = f"thread stacks unreadable: {type(exc).__name__}: {exc}"
        if stacks is None:
            out.setdefault("stacks_note", "thread stacks unreadable: no /proc/self/smaps")
            out.update(thread_stacks_bytes=None, threads_measured=None)
        else:
            out["thread_stacks_bytes"] = stacks["bytes"]
            out["threads_measured"] = stacks["measured"]
            missed = stacks["threads"] - stacks["measured"]
            out["stacks_note"] = (
                f"{missed} of {stacks['threads']} threads were running outside a system "
                "call: their stacks are in unexplained"
                if missed > 0
                else None
            )
        try:
            rollup = smaps_rollup()
        except Exception:  # contained: PSS is context, the parts stand without it
            rollup = None
        if rollup is not None:
            rollup.pop("rss_bytes", None)  # RSS is this section's own rss_bytes
        out["smaps"] = rollup
        out["deep_seconds"] = round(time.perf_counter() - started, 6)
        return out

    def _malloc_part(self) -> dict[str, Any]:
        try:
            mi = self._mallinfo()
        except Exception as exc:  # contained: the kernel's parts are still worth having
            mi, note = None, f"mallinfo2() failed: {type(exc).__name__}: {exc}"
        else:
            note = "no mallinfo2() here (glibc 2.33 or later has it): malloc is not split"
        if mi is None:
            return {
                "malloc_in_use_bytes": None,
                "malloc_mmap_bytes": None,
                "malloc_free_bytes": None,
                "malloc_note": note,
            }
        return {
            # uordblks counts the heap's chunks in use; hblkhd the big blocks mmap'd one each
            "malloc_in_use_bytes": int(mi["uordblks"]) + int(mi["hblkhd"]),
            "malloc_mmap_bytes": int(mi["hblkhd"]),
            "malloc_free_bytes": int(mi["fordblks"]),
            "malloc_note": None,
        }

    def _arena_part(self) -> dict[str, Any]:
        now = self._clock()
        pid = os.getpid()
        last = self._arenas
        fresh = (
            last is None
            or last[0] != pid
            or snapshot_depth.get() == "deep"
            or last[3] <= ARENA_WALK_BUDGET_SECONDS
            or now - last[1] >= self.arenas_max_age
        )
        if fresh:
            try:
                started = time.perf_counter()
                text = self._pymalloc_text()
                # the first walk also loads the ctypes functions: it says nothing of the heap
                walk = time.perf_counter() - started if last is not None else 0.0
            except Exception as exc:  # PyPy, no fmemopen, ...: only this part is lost
                return self._no_arenas(f"pymalloc statistics unavailable: {exc}")
            figures = arena_figures(text) if text is not None else None
            if figures is None:
                return self._no_arenas(
                    "pymalloc is not the object allocator (PYTHONMALLOC=malloc or a debug "
                    "allocator): small objects are in malloc's figures"
                )
            last = (pid, now, figures, walk)
            self._arenas = last
        assert last is not None
        figures = last[2]
        return {
            "python_arenas": figures.arenas,
            "python_arena_size_bytes": figures.arena_size_bytes,
            "python_arenas_bytes": figures.arenas * figures.arena_size_bytes,
            "python_arena_used_bytes": figures.used_bytes,
            "python_arena_free_bytes": figures.free_bytes,
            "python_arenas_age_seconds": round(max(now - last[1], 0.0), 3),
            "pymalloc_note": None,
        }

    @staticmethod
    def _no_arenas(note: str) -> dict[str, Any]:
        return {
            "python_arenas": None,
            "python_arena_size_bytes": None,
            "python_arenas_bytes": None,
            "python_arena_used_bytes": None,
            "python_arena_free_bytes": None,
            "python_arenas_age_seconds": None,
            "pymalloc_note": note,
        }
