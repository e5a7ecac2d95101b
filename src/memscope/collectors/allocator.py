"""The ``allocator`` collector: what the C allocator and pymalloc hold, and how much is in use.

The readers (mallinfo2, pymalloc statistics) live in ``memscope._base.libc``; each costs
tens of microseconds, so the malloc half is read by every snapshot and the pymalloc
arenas, whose cost grows with the heap, by deep ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from .._base.collector import snapshot_depth
from .._base.libc import (
    LibcInfo,
    libc_info,
    mallinfo2,
    pinned_arenas_advice,
    pymalloc_fields,
    pymalloc_stats,
)
from .._base.section import Section
from .._base.units import format_bytes
from .._base.validate import check_bool

__all__ = ["AllocatorCollector", "AllocatorSection"]


def _malloc_note(info: LibcInfo) -> str:
    if info.name == "glibc":
        return (
            f"glibc {info.version} has no mallinfo2() (added in 2.33); mallinfo()'s int "
            "fields wrap past 2 GiB, so memscope does not use it"
        )
    if info.name == "musl":
        return "musl libc has no mallinfo2(); its malloc returns freed memory to the OS itself"
    if info.name == "darwin":
        return "macOS libmalloc has no mallinfo2(); see `vmmap`/`heap` for zone details"
    return "mallinfo2() is glibc-only and this C library is not glibc"


class AllocatorSection(Section):
    """C allocator (glibc mallinfo2) and pymalloc arena numbers, with plain-words advice."""

    name = "allocator"
    ignore: ClassVar[frozenset[str]] = Section.ignore | {"pymalloc_arena_size_bytes"}

    def rank_weight(self, key: str) -> float:
        """The allocator's numbers explain RSS rather than name what grew: they rank low."""
        return 0.1

    def summary_lines(self, top: int = 10) -> list[str]:
        """What malloc and pymalloc hold and use; says when arenas are pinned and what helps."""
        libc = self.get("libc") or "unknown libc"
        malloc = self.get("malloc_note") or "no statistics"
        if self.get("heap_in_use_bytes") is not None:
            # fordblks still counts free pages malloc_trim already gave back (madvise)
            malloc = ", ".join(
                f"{format_bytes(self[key])} {what}"
                for key, what in (
                    ("heap_in_use_bytes", "in use"),
                    ("heap_free_bytes", "free inside its heap"),
                    ("mmap_bytes", "in mmap'd blocks"),
                    ("trimmable_bytes", "trimmable at the heap top"),
                )
            )
        pymalloc = self.get("pymalloc_note") or "no statistics"
        if self.get("pymalloc_arenas") is not None:
            util = self.get("pymalloc_utilisation")
            pymalloc = (
                f"{self['pymalloc_arenas']} arenas = {format_bytes(self['pymalloc_arena_bytes'])}, "
                f"{format_bytes(self['pymalloc_used_bytes'])} in use "
                f"({f'{util:.0%}' if isinstance(util, float) else 'n/a'})"
            )
        lines = [f"{libc} malloc: {malloc}", f"pymalloc: {pymalloc}"]
        if self.get("allocated_blocks") is not None:
            lines.append(f"allocated blocks: {self['allocated_blocks']:,}")
        advice = pinned_arenas_advice(self)
        if advice is not None:
            lines.append(advice)
        return lines


class AllocatorCollector:
    """glibc malloc (mallinfo2) and pymalloc arena statistics (the arenas in deep snapshots)."""

    name = "allocator"
    cost = "cheap"
    section_type = AllocatorSection

    def __init__(
        self,
        *,
        pymalloc: bool | Literal["deep"] = "deep",
        stderr_capture: bool = False,
        libc: Callable[[], LibcInfo] = libc_info,
        mallinfo: Callable[[], Mapping[str, int] | None] = mallinfo2,
    ) -> None:
        if not isinstance(pymalloc, bool) and pymalloc != "deep":
            raise TypeError(f"pymalloc must be a bool or 'deep', got {pymalloc!r}")
        check_bool("stderr_capture", stderr_capture)
        self.pymalloc = pymalloc
        self.stderr_capture = stderr_capture
        self._libc = libc
        self._mallinfo = mallinfo

    def collect(self) -> dict[str, Any]:
        """mallinfo2 keys (None off glibc, with ``malloc_note``) and pymalloc arena keys."""
        info = self._libc()
        data: dict[str, Any] = {
            "libc": f"{info.name} {info.version}" if info.version else info.name,
        }
        data.update(self._malloc_part(info))
        data.update(self._pymalloc_part())
        data["allocated_blocks"] = sys.getallocatedblocks()
        return data

    def _malloc_part(self, info: LibcInfo) -> dict[str, Any]:
        keys = (
            "heap_in_use_bytes",
            "heap_free_bytes",
            "mmap_bytes",
            "trimmable_bytes",
            "arena_bytes",
            "free_chunks",
            "mmap_regions",
        )
        note: str | None = None
        try:
            mi = self._mallinfo()
        except Exception as exc:  # contained: the pymalloc half is still worth having
            mi, note = None, f"mallinfo2() failed: {type(exc).__name__}: {exc}"
        if mi is None:
            out: dict[str, Any] = dict.fromkeys(keys)
            out["malloc_note"] = note or _malloc_note(info)
            return out
        return {
            "heap_in_use_bytes": mi["uordblks"],
            "heap_free_bytes": mi["fordblks"],
            "mmap_bytes": mi["hblkhd"],
            "trimmable_bytes": mi["keepcost"],
            "arena_bytes": mi["arena"],
            "free_chunks": mi["ordblks"],
            "mmap_regions": mi["hblks"],
            "malloc_note": None,
        }

    def _pymalloc_part(self) -> dict[str, Any]:
        if not self.pymalloc:
            return pymalloc_fields(None, "not collected (AllocatorCollector(pymalloc=False))")
        if self.pymalloc == "deep" and snapshot_depth.get() == "cheap":
            # reading the arenas visits every one of them: its cost grows with the heap, and a
            # cheap snapshot's must not
            return pymalloc_fields(None, "collected by deep snapshots (snapshot(deep=True))")
        return pymalloc_fields(*pymalloc_stats(stderr_capture=self.stderr_capture))
