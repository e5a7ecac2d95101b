"""This process as the OS sees it: one reader each for RSS, the psutil handle, open fds and RAM.

psutil is imported on first use, never when memscope is imported.
"""

from __future__ import annotations

import bisect
import importlib
import os
import threading
import time
from typing import Any

__all__ = [
    "FD_KINDS",
    "fd_count",
    "fds_by_kind",
    "psutil",
    "psutil_process",
    "read_kb_fields",
    "rss_bytes",
    "smaps_rollup",
    "thread_stacks",
    "total_memory_bytes",
]

_lock = threading.Lock()
_handle: tuple[int, Any] | None = None  # (pid, psutil.Process): re-made in a forked child


def psutil() -> Any:
    """The psutil module, imported on first use (by name: psutil ships no type stubs)."""
    return importlib.import_module("psutil")


def psutil_process() -> Any:
    """A ``psutil.Process`` for this process, cached per pid (so a forked child gets its own)."""
    global _handle
    pid = os.getpid()
    handle = _handle
    if handle is not None and handle[0] == pid:
        return handle[1]
    proc = psutil().Process(pid)
    with _lock:
        _handle = (pid, proc)
    return proc


def rss_bytes() -> int | None:
    """This process's resident set size in bytes, or None when it cannot be read."""
    try:
        # /proc/self/statm is one read, about 100 times cheaper than a psutil call
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(psutil_process().memory_info().rss)
    except Exception:
        return None


def fd_count() -> int | None:
    """How many file descriptors this process has open, or None where the OS cannot say."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    try:
        return int(psutil_process().num_fds())
    except Exception:  # Windows has handles, not fds
        return None


# what an open fd is, from the target of its /proc/PID/fd link
FD_KINDS = ("files", "sockets", "pipes", "eventfds", "anon_inodes", "other")


def _fd_kind(target: str) -> str:
    if target.startswith("socket:"):
        return "sockets"
    if target.startswith("pipe:"):
        return "pipes"
    if target.startswith("anon_inode:"):
        return "eventfds" if "eventfd" in target else "anon_inodes"
    if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
        return "files"  # a path on a filesystem: a regular file (or a directory)
    return "other"  # /dev/null, terminals, /proc entries, memfd, ...


def fds_by_kind(pid: int | None = None, *, root: str = "/") -> dict[str, int] | None:
    """Open fds by kind (files, sockets, pipes, eventfds, anon_inodes, other) from /proc.

    None where there is no ``/proc/PID/fd`` to read (not Linux, or not ours to read).
    ``root`` is the filesystem holding ``proc/`` (a fake tree in tests).
    """
    where = os.path.join(root, "proc", "self" if pid is None else str(pid), "fd")
    try:
        names = os.listdir(where)
    except OSError:
        return None
    counts = dict.fromkeys(FD_KINDS, 0)
    real = os.path.realpath(where)
    for name in names:
        try:
            target = os.readlink(os.path.join(where, name))
        except OSError:
            continue  # closed since the listing (the listing's own fd among them)
        if target in (where, real) or target.endswith(f"/proc/{os.getpid()}/fd"):
            continue  # the directory handle os.listdir() had open
        counts[_fd_kind(target)] += 1
    return counts


def total_memory_bytes() -> int | None:
    """The machine's total RAM in bytes, or None when it cannot be read."""
    try:
        return int(psutil().virtual_memory().total)
    except Exception:
        return None


def _proc_dir(pid: int | None, root: str) -> str:
    return os.path.join(root, "proc", "self" if pid is None else str(pid))


def read_kb_fields(path: str, fields: dict[bytes, str]) -> dict[str, int]:
    """``Name:  123 kB`` lines of a /proc file, by ``fields`` (b"Name:" -> key), in bytes.

    Raises OSError when the file cannot be read; a field not in the file is left out.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    out: dict[str, int] = {}
    for line in raw.splitlines():
        field, _, rest = line.partition(b":")
        key = fields.get(field + b":")
        if key is None:
            continue
        number, _, unit = rest.strip().partition(b" ")
        try:
            out[key] = int(number) * (1024 if unit == b"kB" else 1)
        except ValueError:
            continue
    return out


# what memscope reads of /proc/PID/smaps_rollup (Linux 4.14+): the sums over all mappings
ROLLUP_FIELDS = {
    b"Rss:": "rss_bytes",
    b"Pss:": "pss_bytes",
    b"Pss_Anon:": "pss_anon_bytes",
    b"Pss_File:": "pss_file_bytes",
    b"Pss_Shmem:": "pss_shmem_bytes",
    b"Shared_Clean:": "shared_clean_bytes",
    b"Shared_Dirty:": "shared_dirty_bytes",
    b"Private_Clean:": "private_clean_bytes",
    b"Private_Dirty:": "private_dirty_bytes",
    b"Swap:": "swap_bytes",
}


def smaps_rollup(pid: int | None = None, *, root: str = "/") -> dict[str, int] | None:
    """PSS (anon, file, shmem), shared/private clean/dirty and swap, in bytes, from
    ``/proc/PID/smaps_rollup``; None where it cannot be read (older kernel, not ours).

    Costs about as much as the kernel's walk of the page tables: ~0.4 ms for a 20 MiB
    interpreter, growing with RSS.
    """
    try:
        found = read_kb_fields(os.path.join(_proc_dir(pid, root), "smaps_rollup"), ROLLUP_FIELDS)
    except OSError:
        return None
    return found or None


def _stack_pointers(task_dir: str) -> tuple[int, list[int]]:
    """How many threads ``task_dir`` lists, and the stack pointers of those that say it."""
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return 0, []
    pointers: list[int] = []
    for tid in tids:
        try:
            with open(os.path.join(task_dir, tid, "syscall"), "rb") as fh:
                words = fh.read().split()
        except OSError:
            continue  # exited since the listing, or not ours to read
        # "NR args... sp pc" in a syscall, "-1 sp pc" blocked outside one, "running"
        if len(words) >= 3:
            try:
                pointers.append(int(words[-2], 16))
            except ValueError:
                continue
    return len(tids), pointers


def _resident_mappings(smaps: bytes) -> tuple[list[int], list[tuple[int, int]]]:
    """Start addresses (sorted) and (end, resident bytes) of every mapping in smaps text."""
    starts: list[int] = []
    rows: list[tuple[int, int]] = []
    end = 0
    for line in smaps.splitlines():
        if not line:
            continue
        first = line[0]
        # mapping headers start with a lower-case hex address, fields with a capital
        if 48 <= first <= 57 or 97 <= first <= 102:
            span = line.split(b" ", 1)[0]
            lo, _, hi = span.partition(b"-")
            try:
                start, end = int(lo, 16), int(hi, 16)
            except ValueError:
                continue
            starts.append(start)
            rows.append((end, 0))
        elif line.startswith(b"Rss:") and rows:
            number = line[4:].split()[:1]
            if number and number[0].isdigit():
                rows[-1] = (rows[-1][0], int(number[0]) * 1024)
    return starts, rows


def thread_stacks(pid: int | None = None, *, root: str = "/") -> dict[str, Any] | None:
    """The resident size of the process's thread stacks, measured: each thread's stack
    pointer (``/proc/PID/task/TID/syscall``) finds its mapping in ``/proc/PID/smaps``.

    ``{"threads", "measured", "bytes", "seconds"}``: threads whose pointer could not be read
    (running outside a syscall, or not ours to read) are counted in ``threads`` but not in
    ``measured``. None when smaps cannot be read. Costs one read of smaps (~1.5 ms for a
    20 MiB interpreter, growing with its mappings and RSS) and one small read a thread.
    """
    started = time.perf_counter()
    where = _proc_dir(pid, root)
    threads, pointers = _stack_pointers(os.path.join(where, "task"))
    try:
        with open(os.path.join(where, "smaps"), "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    starts, rows = _resident_mappings(text)
    found: dict[int, int] = {}  # mapping index -> resident bytes, each mapping once
    measured = 0
    for sp in pointers:
        at = bisect.bisect_right(starts, sp) - 1
        if at >= 0 and sp < rows[at][0]:
            measured += 1
            found[at] = rows[at][1]
    return {
        "threads": threads,
        "measured": measured,
        "bytes": sum(found.values()),
        "seconds": round(time.perf_counter() - started, 6),
    }
