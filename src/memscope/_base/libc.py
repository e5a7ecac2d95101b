"""The C library and pymalloc: which libc this is, mallinfo2(), pymalloc's statistics, trimming.

Two allocators sit under a CPython process. Objects up to 512 bytes come from
*pymalloc*, which carves 1 MiB (256 KiB before 3.10) arenas out of the C heap and
hands an arena back only when every block in it is free. Everything larger goes
to the C library's ``malloc`` (glibc, musl, macOS libmalloc). This collector reads
both: glibc ``mallinfo2()`` and pymalloc's own statistics, each through ctypes in
tens of microseconds. The allocator collector and release_memory() both read them here.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .units import format_bytes

# pymalloc's statistics text is about 3 KB; the cap keeps a surprise from growing unbounded
STATS_TEXT_MAX_BYTES = 1 << 16

# "pinned" = pymalloc holds at least this much more than it uses, at under this utilisation
PINNED_MIN_WASTE_BYTES = 16 << 20
PINNED_MAX_UTILISATION = 0.5

REMEDIES = (
    "set PYTHONMALLOC=malloc so small objects come from the C allocator, which "
    "malloc_trim can shrink, but only together with periodic trimming (a MemoryGuard, or "
    "release_memory() after big batches): untrimmed, the C allocator keeps freed memory "
    "resident and RSS can end up higher than with pymalloc (it is also a few percent "
    "slower); recycle worker processes "
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


# section key -> key of parse_pymalloc_stats(): how snapshots and reports name each figure
PYMALLOC_FIELDS = {
    "pymalloc_arenas": "arenas",
    "pymalloc_arenas_highwater": "arenas_highwater",
    "pymalloc_arenas_allocated_total": "arenas_allocated_total",
    "pymalloc_arenas_reclaimed_total": "arenas_reclaimed_total",
    "pymalloc_arena_size_bytes": "arena_size_bytes",
    "pymalloc_arena_bytes": "arena_bytes",
    "pymalloc_used_bytes": "used_bytes",
    "pymalloc_free_bytes": "free_bytes",
    "pymalloc_utilisation": "utilisation",
}


def pymalloc_fields(stats: Mapping[str, Any] | None, note: str | None = None) -> dict[str, Any]:
    """Parsed statistics under their ``pymalloc_*`` names (all None, with the note, without)."""
    out: dict[str, Any] = {
        key: (stats.get(src) if stats is not None else None) for key, src in PYMALLOC_FIELDS.items()
    }
    out["pymalloc_note"] = None if stats is not None else note
    return out


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


ReleaseMethod = Literal["malloc_trim", "malloc_zone_pressure_relief", "none"]


def release_method() -> ReleaseMethod:
    """How this platform returns freed heap to the OS."""
    info = libc_info()
    if info.has_malloc_trim:
        return "malloc_trim"
    if info.has_pressure_relief:
        return "malloc_zone_pressure_relief"
    return "none"


_trim_fn: Any = None


def trim() -> tuple[ReleaseMethod, bool]:
    """Run the platform's release call; (method, whether it reported releasing memory)."""
    global _trim_fn
    method = release_method()
    if method == "none":
        return method, False
    import ctypes

    handle = libc_info().handle
    if _trim_fn is None:
        if method == "malloc_trim":
            fn = handle.malloc_trim
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
        else:
            fn = handle.malloc_zone_pressure_relief
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            fn.restype = ctypes.c_size_t
        _trim_fn = fn
    # ctypes.CDLL drops the GIL for the call: other threads keep running while it trims
    if method == "malloc_trim":
        return method, bool(_trim_fn(0))  # 0 = keep no padding at the heap top
    return method, bool(_trim_fn(None, 0))  # NULL zone = every zone; goal 0 = all it can


# glibc's mallopt() parameter for the largest request whose freed chunks wait in a
# fastbin; its default is 64 * sizeof(size_t) / 4 (malloc.c), GLIBC_TUNABLES may set another
_M_MXFAST = 1
_DEFAULT_MAX_FAST = 64 * 8 // 4
_TUNED_MAX_FAST = re.compile(r"(?:^|:)glibc\.malloc\.mxfast=(\d+)")
_mallopt_fn: Any = None


def set_fastbins(on: bool) -> bool:
    """Turn glibc's fastbins off or back to the process's setting; False where not glibc.

    Fastbins are caches of freed small chunks that ``mallinfo2()`` counts as free while
    glibc's per-thread cache, which they feed, counts its chunks as in use: a chunk
    moving between the two shifts the bytes in use by its size with nothing allocated.
    A check that reads malloc'd bytes before and after runs turns them off for its
    runs (the thread caches stay; ``mallopt`` gives the main arena's fastbins back to
    the free lists first).
    """
    global _mallopt_fn
    info = libc_info()
    if info.name != "glibc" or info.handle is None:
        return False
    import ctypes

    if _mallopt_fn is None:
        fn = info.handle.mallopt
        fn.argtypes = [ctypes.c_int, ctypes.c_int]
        fn.restype = ctypes.c_int
        _mallopt_fn = fn
    size = 0
    if on:
        tuned = _TUNED_MAX_FAST.search(os.environ.get("GLIBC_TUNABLES", ""))
        size = int(tuned.group(1)) if tuned else _DEFAULT_MAX_FAST
    return bool(_mallopt_fn(_M_MXFAST, size))


# the chunk sizes glibc's fastbins serve (32 to 128 bytes: requests of 24 to 120), whose
# free chunks move between the thread cache and the bins most; 7 is its default count
_CACHE_FILL_SIZES = (24, 40, 56, 72, 88, 104, 120)
_CACHE_COUNT = 7
_fill: tuple[Any, Any, Any] | None = None


def fill_thread_cache() -> bool:
    """Fill this thread's glibc cache for small chunks; False where that is not glibc.

    ``mallinfo2()`` counts the free chunks a thread keeps cached as in use, and how many
    it keeps moves with each request; 7 chunks of each small size taken and given back
    leave every one of those caches full, so the same number is counted at each reading
    (about 23 us). Filled one at a time, as requests take them: the chunks come from
    the cache first, then the free lists, and all go back to the emptied cache.
    """
    global _fill
    info = libc_info()
    if info.name != "glibc" or info.handle is None:
        return False
    if _fill is None:
        import ctypes

        malloc, free = info.handle.malloc, info.handle.free
        malloc.argtypes = [ctypes.c_size_t]
        malloc.restype = ctypes.c_void_p
        free.argtypes = [ctypes.c_void_p]
        free.restype = None
        # the slots are made once: the fill itself allocates no Python object
        _fill = (malloc, free, (ctypes.c_void_p * _CACHE_COUNT)())
    malloc, free, slots = _fill
    for size in _CACHE_FILL_SIZES:
        for k in range(_CACHE_COUNT):
            slots[k] = malloc(size)
        for k in range(_CACHE_COUNT):
            free(slots[k])
    return True
