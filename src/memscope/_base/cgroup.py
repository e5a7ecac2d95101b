"""The memory cgroup of this process (v1 or v2): its tightest limit and its usage.

Read straight from the cgroup filesystem, with the location resolved once per
cgroup and re-read cheaply every time, so a process moved to another cgroup is followed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

# v1 reports "no limit" as a huge page-aligned number (2**63 - 4096 on x86-64); anything
# this large is not a limit anyone set, so it means unlimited
_UNLIMITED = 1 << 62
_MAX_CACHED_ROOTS = 8  # cgroup locations cached per (root, pid): bounded


class _CgroupLocation:
    """Where one process's memory cgroup files live; resolved once, read every time."""

    __slots__ = ("dir", "limit_files", "usage_file", "version")

    def __init__(
        self,
        version: int,
        directory: str,
        limit_files: list[str],
        usage_file: str,
    ) -> None:
        self.version = version
        self.dir = directory
        self.limit_files = limit_files  # the cgroup's own and its ancestors' (visible) limits
        self.usage_file = usage_file

    def read(self) -> dict[str, Any]:
        """Current limit (the tightest along the hierarchy) and usage."""
        limit: int | None = None
        for path in self.limit_files:
            value = _read_limit(path)
            if value is not None and (limit is None or value < limit):
                limit = value
        usage = _read_int(self.usage_file)
        return {
            "version": self.version,
            "limit_bytes": limit,
            "usage_bytes": usage,
            "path": self.dir,
        }


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _read_limit(path: str) -> int | None:
    """A limit file's value; None for "max", the v1 sentinel, or an unreadable file."""
    value = _read_int(path)  # "max" does not parse: unlimited
    if value is None or value >= _UNLIMITED:
        return None
    return value


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _parse_cgroup(text: str) -> tuple[str | None, str | None]:
    """(v1 memory controller path, v2 unified path) from /proc/self/cgroup."""
    v1: str | None = None
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if "memory" in controllers.split(","):
            v1 = path
        elif hierarchy == "0" and controllers == "":
            v2 = path
    return v1, v2


def _parse_mountinfo(text: str) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """((root, mount point) of the v1 memory mount, same for the cgroup2 mount)."""
    v1: tuple[str, str] | None = None
    v2: tuple[str, str] | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or not tail:
            continue
        mount = (_unescape(fields[3]), _unescape(fields[4]))
        fstype = tail[0]
        if fstype == "cgroup" and v1 is None:
            options = tail[2].split(",") if len(tail) > 2 else []
            if "memory" in options:
                v1 = mount
        elif fstype == "cgroup2" and v2 is None:
            v2 = mount
    return v1, v2


def _under(root: str, absolute: str) -> str:
    return os.path.join(root, absolute.lstrip("/"))


def _cgroup_dir(root: str, cgroup_path: str, mount: tuple[str, str]) -> tuple[str, str]:
    """(the cgroup's directory, the mount point directory), both under ``root``."""
    mount_root, mount_point = mount
    top = _under(root, mount_point)
    base = mount_root.rstrip("/")
    if cgroup_path == mount_root or cgroup_path.startswith(base + "/"):
        rel = cgroup_path[len(base) :]
    else:
        # the path is outside what is mounted here (a container without its own cgroup
        # namespace sees the host's path); the mount itself is the container's cgroup
        rel = ""
    directory = os.path.normpath(_under(top, rel)) if rel.strip("/") else top
    if not os.path.isdir(directory):
        directory = top
    return directory, top


def _ancestors(directory: str, top: str) -> list[str]:
    """``directory`` and its parents up to ``top`` (inclusive)."""
    out = [directory]
    top = os.path.normpath(top)
    current = os.path.normpath(directory)
    while current != top and current.startswith(top):
        current = os.path.dirname(current)
        out.append(current)
    return out


def _locate(root: str, cgroup_text: str) -> _CgroupLocation | None:
    v1_path, v2_path = _parse_cgroup(cgroup_text)
    if v1_path is None and v2_path is None:
        return None
    mountinfo = _read_text(os.path.join(root, "proc", "self", "mountinfo"))
    v1_mount, v2_mount = _parse_mountinfo(mountinfo) if mountinfo is not None else (None, None)
    # no usable mountinfo: try the mount points every distribution uses
    if v1_mount is None and os.path.isdir(_under(root, "/sys/fs/cgroup/memory")):
        v1_mount = ("/", "/sys/fs/cgroup/memory")
    if v2_mount is None and os.path.exists(_under(root, "/sys/fs/cgroup/cgroup.controllers")):
        v2_mount = ("/", "/sys/fs/cgroup")
    # in a hybrid setup the memory controller sits in v1, so v1 wins when both exist
    candidates = (
        (1, v1_path, v1_mount, "memory.usage_in_bytes", "memory.limit_in_bytes"),
        (2, v2_path, v2_mount, "memory.current", "memory.max"),
    )
    for version, path, mount, usage_name, limit_name in candidates:
        if path is None or mount is None:
            continue
        directory, top = _cgroup_dir(root, path, mount)
        usage = os.path.join(directory, usage_name)
        # no usage file: the memory controller is not enabled for this cgroup
        if os.path.exists(usage):
            limits = [
                p
                for d in _ancestors(directory, top)
                if os.path.exists(p := os.path.join(d, limit_name))
            ]
            return _CgroupLocation(version, directory, limits, usage)
    return None


_cache_lock = threading.Lock()
# (root, pid) -> (the /proc/self/cgroup text it was resolved from, the location or None)
_locations: dict[tuple[str, int], tuple[str, _CgroupLocation | None]] = {}


def cgroup_memory(root: str = "/") -> dict[str, Any] | None:
    """This process's memory cgroup: ``{"version", "limit_bytes", "usage_bytes", "path"}``, or None.

    ``limit_bytes`` is the tightest limit on the cgroup and its visible ancestors, None when
    unlimited ("max", or the v1 sentinel). None is returned outside a memory cgroup (and on
    macOS). ``root`` is the filesystem root holding ``proc/`` and ``sys/`` (for tests).
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path string, got {type(root).__name__}")
    root = os.fspath(root)
    cgroup_text = _read_text(os.path.join(root, "proc", "self", "cgroup"))
    if cgroup_text is None:
        return None
    key = (root, os.getpid())
    with _cache_lock:
        cached = _locations.get(key)
    # /proc/self/cgroup is re-read every time (one tiny read) so a process moved to another
    # cgroup is followed; the costly part, parsing mountinfo, runs only when it changed
    if cached is not None and cached[0] == cgroup_text:
        location = cached[1]
    else:
        location = _locate(root, cgroup_text)
        with _cache_lock:
            _locations.pop(key, None)
            while len(_locations) >= _MAX_CACHED_ROOTS:
                del _locations[next(iter(_locations))]
            _locations[key] = (cgroup_text, location)
    if location is None:
        return None
    result = location.read()
    if result["usage_bytes"] is None and not os.path.exists(location.usage_file):
        # the cgroup went away under us: forget it and look again next time
        with _cache_lock:
            _locations.pop(key, None)
    return result


def cgroup_usage_bytes() -> int | None:
    """The memory cgroup's usage in bytes, or None outside one (or when it cannot be read)."""
    try:
        info = cgroup_memory()
    except Exception:  # an unreadable cgroup tree means "no cgroup", not a crash
        return None
    usage = None if info is None else info.get("usage_bytes")
    return None if usage is None else int(usage)


def memory_capacity_bytes() -> int | None:
    """What "80%" of memory means here: the cgroup's limit when it has one, else total RAM."""
    try:
        info = cgroup_memory()
    except Exception:
        info = None
    if info is not None and info.get("limit_bytes"):
        return int(info["limit_bytes"])
    from .proc import total_memory_bytes

    return total_memory_bytes()
