"""The ``allocator`` collector: what the C allocator and pymalloc hold, and how much is in use.

Two allocators sit under a CPython process. Objects up to 512 bytes come from
*pymalloc*, which carves 1 MiB (256 KiB before 3.10) arenas out of the C heap and
hands an arena back only when every block in it is free. Everything larger goes
to the C library's ``malloc`` (glibc, musl, macOS libmalloc). This collector reads
both: glibc ``mallinfo2()`` and pymalloc's own statistics, each through ctypes in
tens of microseconds, so it is cheap enough for every snapshot.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .._registry import snapshot_depth
from .._section import Section, format_bytes

__all__ = [
    "AllocatorCollector",
    "AllocatorSection",
    "LibcInfo",
    "libc_info",
    "mallinfo2",
    "parse_pymalloc_stats",
    "pinned_arenas_advice",
    "pymalloc_stats",
    "pymalloc_stats_text",
]

# pymalloc's statistics text is about 3 KB; the cap keeps a surprise from growing unbounded
STATS_TEXT_MAX_BYTES = 1 << 16

# "pinned" = pymalloc holds at least this much more than it uses, at under this utilisation
PINNED_MIN_WASTE_BYTES = 16 << 20
PINNED_MAX_UTILISATION = 0.5

REMEDIES = (
    "set PYTHONMALLOC=malloc so small objects come from the C allocator, which "
    "malloc_trim can shrink (a few percent slower), recycle worker processes "
    "(gunicorn --max-requests with --max-requests-jitter, uvicorn --limit-max-requests, "
    "celery worker_max_tasks_per_child), or avoid holding millions of small objects "
    "at once (stream them, or pack them into bytes/array/numpy)"
)


@dataclass(frozen=True)
class LibcInfo:
    """Which C library this process runs on and which of its memory entry points exist."""

    name: str  # "glibc", "musl", "darwin" or "unknown"
    version: str | None
    has_malloc_trim: bool
    has_mallinfo2: bool
    has_pressure_relief: bool  # macOS malloc_zone_pressure_relief
    handle: Any  # the ctypes.CDLL the functions come from, or None


_probe_lock = threading.Lock()
_libc: LibcInfo | None = None
_fd_capture_lock = threading.Lock()


def _glibc_version(handle: Any) -> str | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):  # not glibc, or no confstr here
        text = None
    if text and text.startswith("glibc "):
        return text.split(" ", 1)[1]
    if handle is not None:
        import ctypes

        fn = getattr(handle, "gnu_get_libc_version", None)
        if fn is not None:
            fn.argtypes = []
            fn.restype = ctypes.c_char_p
            raw = fn()
            if isinstance(raw, bytes):
                return raw.decode("ascii", "replace")
    return None


def _probe() -> LibcInfo:
    import ctypes

    handle: Any = None
    try:
        if sys.platform == "darwin":
            handle = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
        elif os.name == "posix":
            # dlopen(NULL): the symbols already linked into the process, libc among them
            handle = ctypes.CDLL(None)
    except OSError:
        handle = None
    if sys.platform == "darwin":
        name, version = "darwin", None
    else:
        version = _glibc_version(handle)
        if version is not None:
            name = "glibc"
        elif sys.platform.startswith("linux") and _looks_like_musl():
            name = "musl"
        else:
            name = "unknown"

    def has(symbol: str) -> bool:
        return handle is not None and getattr(handle, symbol, None) is not None

    return LibcInfo(
        name=name,
        version=version,
        # musl has no malloc_trim; only trust the glibc one (same name, same meaning)
        has_malloc_trim=name == "glibc" and has("malloc_trim"),
        has_mallinfo2=name == "glibc" and has("mallinfo2"),
        has_pressure_relief=name == "darwin" and has("malloc_zone_pressure_relief"),
        handle=handle,
    )


def _looks_like_musl() -> bool:
    try:
        return any(n.startswith("ld-musl-") for n in os.listdir("/lib"))
    except OSError:
        return False


def libc_info() -> LibcInfo:
    """The C library this process uses (probed once, then cached; thread-safe)."""
    global _libc
    info = _libc
    if info is not None:
        return info
    with _probe_lock:
        if _libc is None:
            try:
                _libc = _probe()
            except Exception:  # a broken ctypes must not break snapshots
                _libc = LibcInfo("unknown", None, False, False, False, None)
        return _libc


_MALLINFO2_FIELDS = (
    "arena",  # bytes obtained from the OS with sbrk (main arena) + mmap'd arenas
    "ordblks",  # free chunks
    "smblks",  # free fastbin chunks
    "hblks",  # mmap'd regions
    "hblkhd",  # bytes in mmap'd regions
    "usmblks",  # unused, always 0
    "fsmblks",  # bytes in free fastbin chunks
    "uordblks",  # bytes in use
    "fordblks",  # free bytes held by malloc
    "keepcost",  # top-most releasable bytes
)

_mallinfo2_fn: Any = None


def mallinfo2() -> dict[str, int] | None:
    """glibc ``mallinfo2()`` as a dict of its size_t fields, or None where it does not exist."""
    global _mallinfo2_fn
    info = libc_info()
    if not info.has_mallinfo2:
        return None
    if _mallinfo2_fn is None:
        import ctypes

        class _Mallinfo2(ctypes.Structure):
            _fields_ = [(f, ctypes.c_size_t) for f in _MALLINFO2_FIELDS]

        fn = info.handle.mallinfo2
        fn.argtypes = []
        fn.restype = _Mallinfo2
        _mallinfo2_fn = fn
    result = _mallinfo2_fn()
    return {f: int(getattr(result, f)) for f in _MALLINFO2_FIELDS}


_debug_stats: tuple[Any, Any, Any] | None = None  # (_PyObject_DebugMallocStats, fmemopen, fclose)
_debug_stats_error: str | None = None


def _debug_stats_functions() -> tuple[Any, Any, Any] | None:
    global _debug_stats, _debug_stats_error
    if _debug_stats is not None or _debug_stats_error is not None:
        return _debug_stats
    handle = libc_info().handle  # before taking the lock: libc_info() takes it too
    with _probe_lock:
        if _debug_stats is not None or _debug_stats_error is not None:
            return _debug_stats
        try:
            import ctypes

            if handle is None:
                raise OSError("no C library handle")
            # pythonapi is a PyDLL: the call keeps the GIL, which the stats walk needs
            stats = ctypes.pythonapi._PyObject_DebugMallocStats
            stats.argtypes = [ctypes.c_void_p]
            stats.restype = ctypes.c_int
            fmemopen = handle.fmemopen
            fmemopen.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
            fmemopen.restype = ctypes.c_void_p
            fclose = handle.fclose
            fclose.argtypes = [ctypes.c_void_p]
            fclose.restype = ctypes.c_int
            _debug_stats = (stats, fmemopen, fclose)
        except Exception as exc:  # PyPy, no fmemopen, symbols not exported, ...
            _debug_stats_error = f"{type(exc).__name__}: {exc}"
        return _debug_stats


def _stats_via_memory_file() -> str | None:
    """pymalloc's statistics written into an in-memory FILE: fd 2 is never touched."""
    import ctypes

    functions = _debug_stats_functions()
    if functions is None:
        raise RuntimeError(f"pymalloc statistics not reachable via ctypes: {_debug_stats_error}")
    stats, fmemopen, fclose = functions
    buf = ctypes.create_string_buffer(STATS_TEXT_MAX_BYTES)
    # one byte short, so the text is always NUL-terminated even when the cap is hit
    fp = fmemopen(buf, STATS_TEXT_MAX_BYTES - 1, b"w")
    if not fp:
        raise OSError(ctypes.get_errno(), "fmemopen failed")
    try:
        used = stats(fp)
    finally:
        fclose(fp)
    if not used:
        return None  # pymalloc is not the object allocator (PYTHONMALLOC=malloc, debug hooks)
    return buf.value.decode("ascii", "replace")


def _stats_via_stderr() -> str | None:
    """``sys._debugmallocstats()`` with fd 2 redirected to a temp file, under a lock.

    Anything another thread writes to fd 2 during the call (well under a millisecond)
    lands in the temp file and is lost; that is why this path is opt-in.
    """
    import tempfile

    with _fd_capture_lock:
        # a closed or replaced sys.stderr must not stop the capture
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            with tempfile.TemporaryFile() as tmp:
                os.dup2(tmp.fileno(), 2)
                try:
                    sys._debugmallocstats()
                finally:
                    os.dup2(saved, 2)  # always give the process its stderr back
                tmp.seek(0)
                raw = tmp.read(STATS_TEXT_MAX_BYTES)
        finally:
            os.close(saved)
    text = raw.decode("ascii", "replace")
    return text if "arenas allocated current" in text else None


def pymalloc_stats_text(*, stderr_capture: bool = False) -> str | None:
    """pymalloc's own statistics text, or None when pymalloc is not in use.

    Read through ctypes into an in-memory file (about 40 microseconds, thread-safe).
    Where that path does not exist, ``stderr_capture=True`` falls back to redirecting
    fd 2 around ``sys._debugmallocstats()``; otherwise a RuntimeError says why.
    """
    try:
        return _stats_via_memory_file()
    except Exception:
        if not stderr_capture:
            raise
    return _stats_via_stderr()


_VALUE = re.compile(r"^[\d,]+$")
_ARENAS_LINE = re.compile(r"^(?P<n>\d+)\s+arenas\s*\*\s*(?P<size>\d+)\s+bytes/arena$")
_POOLS_LINE = re.compile(r"^(?P<n>\d+)\s+unused pools\s*\*\s*(?P<size>\d+)\s+bytes$")
_LABELS = {
    "# arenas allocated total": "arenas_allocated_total",
    "# arenas reclaimed": "arenas_reclaimed_total",
    "# arenas highwater mark": "arenas_highwater",
    "# arenas allocated current": "arenas",
    "# bytes in allocated blocks": "used_bytes",
    "# bytes in available blocks": "available_block_bytes",
    "# bytes lost to pool headers": "pool_header_bytes",
    "# bytes lost to quantization": "quantization_bytes",
    "# bytes lost to arena alignment": "alignment_bytes",
}


def parse_pymalloc_stats(text: str) -> dict[str, Any]:
    """Parse ``sys._debugmallocstats()`` text into numbers; missing ones are absent.

    Keys: ``arenas``, ``arenas_allocated_total``, ``arenas_reclaimed_total``,
    ``arenas_highwater``, ``arena_size_bytes``, ``arena_bytes``, ``used_bytes``,
    ``available_block_bytes``, ``unused_pool_bytes``, ``free_bytes`` and
    ``utilisation`` (used_bytes / arena_bytes, None with no arenas).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out: dict[str, Any] = {}
    for line in text.splitlines():
        # str methods, not one regex per line: this runs on every cheap snapshot
        label, sep, raw = line.rpartition("=")
        raw = raw.strip()
        if not sep or _VALUE.match(raw) is None:
            continue
        label = label.strip()
        value = int(raw.replace(",", ""))
        key = _LABELS.get(label)
        if key is not None:
            out.setdefault(key, value)  # first occurrence: the pymalloc block, not later totals
            continue
        arenas = _ARENAS_LINE.match(label)
        if arenas is not None and "arena_bytes" not in out:
            out["arena_size_bytes"] = int(arenas["size"])
            out["arena_bytes"] = value
            continue
        pools = _POOLS_LINE.match(label)
        if pools is not None and "unused_pool_bytes" not in out:
            out["unused_pool_bytes"] = value
    if "arena_bytes" not in out and "arenas" in out and "arena_size_bytes" in out:
        out["arena_bytes"] = out["arenas"] * out["arena_size_bytes"]
    if "available_block_bytes" in out or "unused_pool_bytes" in out:
        out["free_bytes"] = out.get("available_block_bytes", 0) + out.get("unused_pool_bytes", 0)
    if "used_bytes" in out and "arena_bytes" in out:
        out["utilisation"] = out["used_bytes"] / out["arena_bytes"] if out["arena_bytes"] else None
    return out


def pymalloc_stats(*, stderr_capture: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """(parsed pymalloc statistics or None, a note saying why they are missing or None)."""
    try:
        text = pymalloc_stats_text(stderr_capture=stderr_capture)
    except Exception as exc:
        return None, (
            f"pymalloc statistics unavailable ({exc}); "
            "AllocatorCollector(stderr_capture=True) reads them from fd 2 instead"
        )
    if text is None:
        return None, (
            "pymalloc is not the object allocator here (PYTHONMALLOC=malloc or a debug "
            "allocator): small objects come from the C allocator"
        )
    parsed = parse_pymalloc_stats(text)
    if "arenas" not in parsed:
        return None, "pymalloc statistics had an unknown format; nothing parsed"
    return parsed, None


def pinned_arenas_advice(data: Mapping[str, Any]) -> str | None:
    """Plain words when pymalloc holds far more arena memory than it uses, else None."""
    arena_bytes = data.get("pymalloc_arena_bytes")
    used = data.get("pymalloc_used_bytes")
    utilisation = data.get("pymalloc_utilisation")
    if not isinstance(arena_bytes, int) or not isinstance(used, int):
        return None
    if not isinstance(utilisation, (int, float)) or isinstance(utilisation, bool):
        return None
    if arena_bytes - used < PINNED_MIN_WASTE_BYTES or utilisation >= PINNED_MAX_UTILISATION:
        return None
    arenas = data.get("pymalloc_arenas")
    return (
        f"pymalloc arenas are pinned: {arenas} arenas hold {format_bytes(arena_bytes)} "
        f"but only {format_bytes(used)} ({utilisation:.0%}) is in live objects. An arena "
        "goes back to the OS only when every object in it is freed, so a few survivors "
        "per arena keep the whole arena resident; malloc_trim cannot return it. "
        f"What helps: {REMEDIES}."
    )


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
        lines: list[str] = []
        libc = self.get("libc") or "unknown libc"
        if self.get("heap_in_use_bytes") is not None:
            lines.append(
                f"{libc} malloc: {format_bytes(self['heap_in_use_bytes'])} in use, "
                # fordblks still counts free pages malloc_trim already gave back (madvise)
                f"{format_bytes(self['heap_free_bytes'])} free inside its heap, "
                f"{format_bytes(self['mmap_bytes'])} in mmap'd blocks, "
                f"{format_bytes(self['trimmable_bytes'])} trimmable at the heap top"
            )
        else:
            lines.append(f"{libc} malloc: {self.get('malloc_note') or 'no statistics'}")
        if self.get("pymalloc_arenas") is not None:
            util = self.get("pymalloc_utilisation")
            util_text = f"{util:.0%}" if isinstance(util, float) else "n/a"
            lines.append(
                f"pymalloc: {self['pymalloc_arenas']} arenas = "
                f"{format_bytes(self['pymalloc_arena_bytes'])}, "
                f"{format_bytes(self['pymalloc_used_bytes'])} in use ({util_text})"
            )
        else:
            lines.append(f"pymalloc: {self.get('pymalloc_note') or 'no statistics'}")
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
        if not isinstance(stderr_capture, bool):
            raise TypeError(f"stderr_capture must be a bool, got {type(stderr_capture).__name__}")
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
        keys = (
            "pymalloc_arenas",
            "pymalloc_arenas_highwater",
            "pymalloc_arenas_allocated_total",
            "pymalloc_arenas_reclaimed_total",
            "pymalloc_arena_size_bytes",
            "pymalloc_arena_bytes",
            "pymalloc_used_bytes",
            "pymalloc_free_bytes",
            "pymalloc_utilisation",
        )
        if not self.pymalloc:
            out: dict[str, Any] = dict.fromkeys(keys)
            out["pymalloc_note"] = "not collected (AllocatorCollector(pymalloc=False))"
            return out
        if self.pymalloc == "deep" and snapshot_depth.get() == "cheap":
            # reading the arenas visits every one of them: its cost grows with the heap, and a
            # cheap snapshot must not
            out = dict.fromkeys(keys)
            out["pymalloc_note"] = "collected by deep snapshots (snapshot(deep=True))"
            return out
        stats, note = pymalloc_stats(stderr_capture=self.stderr_capture)
        if stats is None:
            out = dict.fromkeys(keys)
            out["pymalloc_note"] = note
            return out
        return {
            "pymalloc_arenas": stats.get("arenas"),
            "pymalloc_arenas_highwater": stats.get("arenas_highwater"),
            "pymalloc_arenas_allocated_total": stats.get("arenas_allocated_total"),
            "pymalloc_arenas_reclaimed_total": stats.get("arenas_reclaimed_total"),
            "pymalloc_arena_size_bytes": stats.get("arena_size_bytes"),
            "pymalloc_arena_bytes": stats.get("arena_bytes"),
            "pymalloc_used_bytes": stats.get("used_bytes"),
            "pymalloc_free_bytes": stats.get("free_bytes"),
            "pymalloc_utilisation": stats.get("utilisation"),
            "pymalloc_note": None,
        }
