"""This process as the OS sees it: one reader each for RSS, the psutil handle, open fds and RAM.

psutil is imported on first use, never when memscope is imported.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

__all__ = [
    "FD_KINDS",
    "fd_count",
    "fds_by_kind",
    "psutil",
    "psutil_process",
    "rss_bytes",
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
