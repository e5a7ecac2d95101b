"""The ``process`` collector: RSS, VMS, fds, threads, system memory, cgroup limit, children.

psutil is imported on first use, never when memscope is imported. The cgroup limit is
read straight from the cgroup filesystem (v1 or v2) by :func:`cgroup_memory`, which
other parts of memscope (the memory guard) call too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from .._section import Section, format_bytes

# v1 reports "no limit" as a huge page-aligned number (2**63 - 4096 on x86-64); anything
# this large is not a limit anyone set, so it means unlimited
_UNLIMITED = 1 << 62
_MAX_CACHED_ROOTS = 8  # cgroup locations cached per (root, pid): bounded
_CMDLINE_MAX_LIMIT = 65536


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
    if v1_path is not None and v1_mount is not None:
        directory, top = _cgroup_dir(root, v1_path, v1_mount)
        usage = os.path.join(directory, "memory.usage_in_bytes")
        if os.path.exists(usage):
            limits = [
                p
                for d in _ancestors(directory, top)
                if os.path.exists(p := os.path.join(d, "memory.limit_in_bytes"))
            ]
            return _CgroupLocation(1, directory, limits, usage)
    if v2_path is not None and v2_mount is not None:
        directory, top = _cgroup_dir(root, v2_path, v2_mount)
        usage = os.path.join(directory, "memory.current")
        # no memory.current: the memory controller is not enabled for this cgroup
        if os.path.exists(usage):
            limits = [
                p
                for d in _ancestors(directory, top)
                if os.path.exists(p := os.path.join(d, "memory.max"))
            ]
            return _CgroupLocation(2, directory, limits, usage)
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


class ProcessSection(Section):
    """Resident and virtual memory, fds and threads, system memory, cgroup and children."""

    name = "process"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "children": ("pid", ("rss_bytes",)),
    }

    def rank_weight(self, key: str) -> float:
        """RSS and fds lead a diff; the machine's and the cgroup's numbers are context."""
        if key.startswith("system."):
            return 0.0
        if key.startswith("cgroup.") or key in ("vms_bytes", "percent"):
            return 0.05
        return 1.0

    def summary_lines(self, top: int = 10) -> list[str]:
        """rss/vms/fds/threads, system memory, cgroup limit, children (at most 6 lines)."""
        fds = self.get("num_fds")
        head = (
            f"rss {format_bytes(self.get('rss_bytes') or 0)} "
            f"(vms {format_bytes(self.get('vms_bytes') or 0)}), "
            f"{'?' if fds is None else fds} fds, {self.get('num_threads')} threads"
        )
        if self.get("uss_bytes") is not None:
            head += f", uss {format_bytes(self['uss_bytes'])}"
        lines = [head]
        system = self.get("system") or {}
        if system:
            lines.append(
                f"system available {format_bytes(system.get('available_bytes') or 0)} "
                f"of {format_bytes(system.get('total_bytes') or 0)}; "
                f"this process uses {self.get('percent', 0):.1f}%"
            )
        cgroup = self.get("cgroup")
        if cgroup:
            usage = cgroup.get("usage_bytes")
            limit = cgroup.get("limit_bytes")
            used = "usage ?" if usage is None else f"usage {format_bytes(usage)}"
            if limit is None:
                lines.append(f"cgroup v{cgroup.get('version')}: no limit, {used}")
            else:
                pct = f" ({100.0 * usage / limit:.0f}%)" if usage is not None and limit else ""
                lines.append(
                    f"cgroup v{cgroup.get('version')} limit {format_bytes(limit)}, {used}{pct}"
                )
        else:
            lines.append("no memory cgroup limit")
        count = self.get("children_count") or 0
        if count:
            lines.append(
                f"{count} child process{'es' if count != 1 else ''}, "
                f"rss {format_bytes(self.get('children_rss_bytes') or 0)} total"
            )
            for row in (self.get("children") or [])[: max(0, min(top, 6 - len(lines)))]:
                lines.append(
                    f"  pid {row.get('pid')} {row.get('name')}: "
                    f"{format_bytes(row.get('rss_bytes') or 0)}  {_clip(row.get('cmdline'), 60)}"
                )
        return lines


def _clip(text: object, limit: int) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _has_children() -> bool | None:
    """Cheap "does this process have any child?" (None when the OS cannot say cheaply)."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return None
    try:
        # WNOWAIT: look without reaping, so no one else's wait() is disturbed
        waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    except OSError:
        return None
    return True


class ProcessCollector:
    """This process's memory (psutil) plus the cgroup limit and child processes.

    Thread-safe. ``proc`` (a ``psutil.Process``) and ``root`` (the filesystem holding
    ``proc/`` and ``sys/``) are injectable for tests; by default the current process is
    used, and re-created after a fork.
    """

    name = "process"
    cost = "cheap"
    section_type = ProcessSection

    def __init__(
        self,
        *,
        proc: Any = None,
        root: str = "/",
        uss: bool = False,
        children: bool = True,
        max_children: int = 50,
        cmdline_max: int = 256,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path string, got {type(root).__name__}")
        for arg, value in (("uss", uss), ("children", children)):
            if not isinstance(value, bool):
                raise TypeError(f"{arg} must be a bool, got {type(value).__name__}")
        _check_int("max_children", max_children, 0, 100_000)
        _check_int("cmdline_max", cmdline_max, 16, _CMDLINE_MAX_LIMIT)
        self.root = os.fspath(root)
        self.uss = uss
        self.children = children
        self.max_children = max_children
        self.cmdline_max = cmdline_max
        self._injected = proc
        self._proc: Any = None
        self._pid = -1

    def _process(self) -> Any:
        if self._injected is not None:
            return self._injected
        pid = os.getpid()
        if self._pid != pid:  # first use, or we are the child of a fork
            psutil = _psutil()

            self._proc = psutil.Process(pid)
            self._pid = pid
        return self._proc

    def collect(self) -> dict[str, Any]:
        """Read this process's memory figures, the system's, the cgroup's and the children's."""
        psutil = _psutil()

        proc = self._process()
        with proc.oneshot():
            mem = proc.memory_info()
            num_threads = proc.num_threads()
            try:
                num_fds: int | None = proc.num_fds()
            except (AttributeError, psutil.AccessDenied, NotImplementedError):
                num_fds = None  # Windows has handles, not fds
        uss: int | None = None
        if self.uss:
            try:
                uss = int(proc.memory_full_info().uss)
            except (AttributeError, psutil.AccessDenied, NotImplementedError):
                uss = None
        vm = psutil.virtual_memory()
        total = int(vm.total)
        data: dict[str, Any] = {
            "pid": int(proc.pid),
            "rss_bytes": int(mem.rss),
            "vms_bytes": int(mem.vms),
            "uss_bytes": uss,
            "percent": round(100.0 * mem.rss / total, 3) if total else 0.0,
            "num_fds": num_fds,
            "num_threads": int(num_threads),
            "system": {"available_bytes": int(vm.available), "total_bytes": total},
            "cgroup": self._cgroup(),
        }
        rows: list[dict[str, Any]] = []
        count = 0
        rss_total = 0
        if self.children:
            rows, count, rss_total = self._children(proc)
        data["children"] = rows
        data["children_count"] = count
        data["children_rss_bytes"] = rss_total
        return data

    def _cgroup(self) -> dict[str, Any] | None:
        try:
            return cgroup_memory(self.root)
        except Exception:  # an odd cgroup filesystem must not cost the rest of the section
            return None

    def _children(self, proc: Any) -> tuple[list[dict[str, Any]], int, int]:
        psutil = _psutil()

        if self._injected is None and _has_children() is False:
            return [], 0, 0  # the common case costs one syscall instead of a /proc scan
        try:
            kids: Sequence[Any] = proc.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return [], 0, 0
        sized: list[tuple[int, Any]] = []
        for kid in kids:
            try:
                rss = int(kid.memory_info().rss)
            except psutil.ZombieProcess:
                rss = 0  # exited but not yet reaped: no memory, but still a child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # gone mid-read (or not ours to read): skipped
            sized.append((rss, kid))
        sized.sort(key=lambda pair: pair[0], reverse=True)
        rows: list[dict[str, Any]] = []
        for rss, kid in sized[: self.max_children]:
            name: str | None
            cmdline: str | None
            try:
                with kid.oneshot():
                    name = kid.name()
                    cmdline = " ".join(kid.cmdline())
            except psutil.ZombieProcess:
                name, cmdline = "<zombie>", None
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                name, cmdline = None, None  # it was there a moment ago: keep its size
            rows.append(
                {
                    "pid": int(kid.pid),
                    "name": name,
                    "cmdline": None if cmdline is None else _clip(cmdline, self.cmdline_max),
                    "rss_bytes": rss,
                }
            )
        return rows, len(sized), sum(rss for rss, _ in sized)


def _psutil() -> Any:
    # imported on first use (import memscope stays fast); loaded by name so that the
    # type checker does not need psutil's stubs
    import importlib

    return importlib.import_module("psutil")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
