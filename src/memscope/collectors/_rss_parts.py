"""The parts of RSS (the arithmetic that makes them add up, their words and advice) and
the ``accounting`` section that renders them; the collector is in ``accounting``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._base.libc import pinned_arenas_advice
from .._base.section import Section
from .._base.units import format_bytes

__all__ = ["ANON_PARTS", "PART_WORDS", "TOP_PARTS", "AccountingSection", "rss_parts"]

# the parts of anonymous memory, in the order reports list them
ANON_PARTS = (
    "python_arenas_bytes",
    "malloc_in_use_bytes",
    "malloc_free_bytes",
    "unexplained_bytes",
)
TOP_PARTS = ("anon_bytes", "file_bytes", "shmem_bytes")

_WORDS = {
    "anon_bytes": "anonymous",
    "file_bytes": "file-backed",
    "shmem_bytes": "shared memory",
    "python_arenas_bytes": "pymalloc arenas",
    "malloc_in_use_bytes": "malloc in use",
    "malloc_free_bytes": "malloc free",
    "unexplained_bytes": "unexplained",
}

# the parts of RSS, in the order reports list them, and their words
PART_WORDS = {
    "python_objects": "live Python objects",
    "pymalloc_free": "free in pymalloc arenas",
    "python_arenas": "pymalloc arenas",
    "malloc_in_use": "malloc in use",
    "other_native": "other native heap",
    "malloc_free": "free malloc keeps",
    "thread_stacks": "thread stacks",
    "unexplained": "unexplained",
    "file": "file-backed",
    "shmem": "shared memory",
}
# which parts give way, first to last, when the figures exceed anonymous memory: free
# space is what may not be resident (trimmed pages, arena pools never touched)
_YIELD_ORDER = (
    "malloc_free",
    "pymalloc_free",
    "python_arenas",
    "other_native",
    "malloc_in_use",
    "thread_stacks",
    "python_objects",
)

# what a part is, and what helps when it dominates
_ADVICE = {
    "python_objects": (
        "the live objects' own sizes (the census): its by_type and by_module tables say "
        "which; memscope.compare() of two snapshots says what grows"
    ),
    "pymalloc_free": (
        "free blocks and pools inside pymalloc's arenas: an arena goes back to the OS only "
        "when all of it is free, so a few survivors pin it (the allocator section says when)"
    ),
    "python_arenas": (
        "small Python objects (up to 512 bytes) in pymalloc's arenas: a deep snapshot's "
        "census says which types; an arena returns to the OS only when all of it is free "
        "(the allocator section says when arenas are pinned)"
    ),
    "malloc_in_use": (
        "blocks malloc handed out: large Python objects (big str, bytes, lists' arrays, "
        "dicts' tables) and C extensions' memory: large_objects (deep) and tracemalloc "
        "name them"
    ),
    "other_native": (
        "allocated memory that is no live object's own size: C extensions' buffers, the "
        "interpreter's code and caches, what objects point at outside themselves: "
        "tracemalloc names the lines that allocated it"
    ),
    "malloc_free": (
        "free memory malloc keeps for reuse: memscope.release_memory() (malloc_trim) "
        "gives what it can back to the OS"
    ),
    "thread_stacks": (
        "the threads' resident stacks: fewer threads, or a smaller threading.stack_size() "
        "for new ones"
    ),
    "unexplained": (
        "memory no allocator accounts for: thread stacks (a deep snapshot measures them), "
        "C extensions that map memory themselves, the interpreter's own data; "
        "/proc/PID/smaps lists the mappings that hold it"
    ),
    "file": (
        "code and files mapped in (the interpreter, shared libraries, mmap'd files): "
        "clean pages are shared and the kernel drops them under pressure"
    ),
    "shmem": "shared memory (multiprocessing, /dev/shm, memfd): it outlives no process",
}


def rss_parts(figures: Mapping[str, Any]) -> tuple[dict[str, int], int]:
    """Parts of RSS that add up to it, and by how much the figures exceeded anonymous memory.

    ``figures`` holds the collector's keys: ``anon_bytes``, ``file_bytes``,
    ``shmem_bytes`` and, where known, the allocators' figures, ``python_objects_bytes``
    (deep, from the census) and ``thread_stacks_bytes`` (deep).
    """

    def known(key: str) -> int | None:
        value = figures.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    anon = max(known("anon_bytes") or 0, 0)
    arenas, used = known("python_arenas_bytes"), known("python_arena_used_bytes")
    in_use, objects = known("malloc_in_use_bytes"), known("python_objects_bytes")
    parts: dict[str, int] = {}
    if objects is not None:
        # the objects live in the arenas' used blocks and in malloc's blocks in use
        allocated = (used or 0) + (in_use or 0)
        parts["python_objects"] = min(objects, allocated) if allocated > 0 else objects
        if arenas is not None:
            parts["pymalloc_free"] = max(arenas - (used or 0), 0)
        parts["other_native"] = max(allocated - parts["python_objects"], 0)
    else:
        if arenas is not None:
            parts["python_arenas"] = arenas
        if in_use is not None:
            parts["malloc_in_use"] = in_use
    free = known("malloc_free_bytes")
    if free is not None:
        parts["malloc_free"] = free
    stacks = known("thread_stacks_bytes")
    if stacks is not None:
        parts["thread_stacks"] = stacks
    excess = sum(parts.values()) - anon
    cut = excess
    for name in _YIELD_ORDER:
        if cut <= 0:
            break
        if name in parts:
            taken = min(parts[name], cut)
            parts[name] -= taken
            cut -= taken
    parts["unexplained"] = anon - sum(parts.values())
    parts["file"] = max(known("file_bytes") or 0, 0)
    parts["shmem"] = max(known("shmem_bytes") or 0, 0)
    ordered = {k: parts[k] for k in PART_WORDS if k in parts}
    return ordered, max(excess, 0)


def _percent(part: object, whole: object) -> str:
    if not isinstance(part, int) or not isinstance(whole, int) or whole <= 0:
        return ""
    return f" ({part / whole:.0%})"


class AccountingSection(Section):
    """RSS in parts that add up to it (objects, allocators' free space, stacks, files...)."""

    name = "accounting"
    ignore: ClassVar[frozenset[str]] = Section.ignore | {
        "python_arena_size_bytes",
        "python_arenas_age_seconds",
        "deep_seconds",
        # restatements, in a diff, of what other keys say (the census's total, RSS by
        # kind): the parts table too is not diffed, its rows are the keys above
        "python_objects_bytes",
        "pss_bytes",
        "pss_anon_bytes",
        "pss_file_bytes",
        "pss_shmem_bytes",
        "shared_clean_bytes",
        "shared_dirty_bytes",
        "private_clean_bytes",
        "private_dirty_bytes",
    }

    def rank_weight(self, key: str) -> float:
        """The parts explain RSS rather than name what grew: they rank below the causes."""
        return 0.2

    def _part_rows(self) -> list[tuple[str, int]]:
        rows = self.get("parts")
        out: list[tuple[str, int]] = []
        for row in rows if isinstance(rows, list) else ():
            if isinstance(row, Mapping) and isinstance(row.get("bytes"), int):
                out.append((str(row.get("part")), int(row["bytes"])))
        return out

    def dominant(self) -> str | None:
        """The largest part of RSS (a name of ``parts``; an older section's key otherwise)."""
        rows = self._part_rows()
        if rows:
            return max(rows, key=lambda r: r[1])[0]
        sizes = {
            k: self[k]
            for k in (*ANON_PARTS, "file_bytes", "shmem_bytes")
            if isinstance(self.get(k), int)
        }
        if not sizes:
            return None
        return max(sizes, key=lambda k: sizes[k])

    def summary_lines(self, top: int = 10) -> list[str]:
        """RSS, its three kernel parts, the parts table, notes, and what dominates."""
        rss = self.get("rss_bytes")
        if not isinstance(rss, int):
            return ["RSS accounting: no figures"]
        lines = [
            f"RSS {format_bytes(rss)} = "
            + ", ".join(
                f"{_WORDS[k]} {format_bytes(self.get(k) or 0)}{_percent(self.get(k), rss)}"
                for k in TOP_PARTS
            )
        ]
        rows = self._part_rows()
        if rows:
            lines.append("where RSS goes (the parts add up to it):")
            width = max(len(PART_WORDS.get(name, name)) for name, _ in rows)
            for name, size in rows:
                share = f"{size / rss:6.1%}" if rss > 0 else ""
                lines.append(
                    f"  {PART_WORDS.get(name, name):<{width}} {format_bytes(size):>10} {share}"
                )
        else:  # a section saved before the parts existed
            anon = [
                f"{_WORDS[k]} {format_bytes(self[k])}{_percent(self[k], rss)}"
                for k in ANON_PARTS
                if isinstance(self.get(k), int)
            ]
            if anon:
                lines.append("anonymous = " + ", ".join(anon))
        used, free = self.get("python_arena_used_bytes"), self.get("python_arena_free_bytes")
        if isinstance(used, int) and isinstance(free, int):
            lines.append(
                f"pymalloc arenas hold {format_bytes(used)} of live small objects and "
                f"{format_bytes(free)} free"
            )
        smaps = self.get("smaps")
        if isinstance(smaps, Mapping) and isinstance(smaps.get("pss_bytes"), int):
            lines.append(
                f"PSS {format_bytes(smaps['pss_bytes'])} (anonymous "
                f"{format_bytes(smaps.get('pss_anon_bytes') or 0)}, file "
                f"{format_bytes(smaps.get('pss_file_bytes') or 0)}, shared memory "
                f"{format_bytes(smaps.get('pss_shmem_bytes') or 0)}), swap "
                f"{format_bytes(smaps.get('swap_bytes') or 0)}"
            )
        for note in ("malloc_note", "pymalloc_note", "objects_note", "stacks_note", "note"):
            if self.get(note):
                lines.append(str(self[note]))
        lines.extend(self._dominant_line(rss))
        pinned = self._pinned()
        if pinned is not None:
            lines.append(pinned)
        return lines  # a fixed handful of lines: ``top`` bounds tables, and there is none

    def _dominant_line(self, rss: int) -> list[str]:
        main = self.dominant()
        if main is None:
            return []
        rows = dict(self._part_rows())
        size = rows[main] if main in rows else self[main]
        word = PART_WORDS.get(main) or _WORDS.get(main, main)
        key = main.removesuffix("_bytes")
        share = f", {size / rss:.0%}" if rss > 0 else ""
        return [f"most of RSS is {word} ({format_bytes(size)}{share}): {_ADVICE.get(key, '')}"]

    def _pinned(self) -> str | None:
        arena_bytes, used = self.get("python_arenas_bytes"), self.get("python_arena_used_bytes")
        if not isinstance(arena_bytes, int) or not isinstance(used, int) or arena_bytes <= 0:
            return None
        # the allocator section's rule and words, on this section's figures
        return pinned_arenas_advice(
            {
                "pymalloc_arenas": self.get("python_arenas"),
                "pymalloc_arena_bytes": arena_bytes,
                "pymalloc_used_bytes": used,
                "pymalloc_utilisation": used / arena_bytes,
            }
        )
