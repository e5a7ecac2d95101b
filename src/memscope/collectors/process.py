"""The ``process`` collector: RSS, VMS, fds, threads, system memory, cgroup limit, children.

The platform readers it uses (the psutil handle, the cgroup) live in the bottom layer
(``memscope._base``), where the memory guard reads them too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from .._base.cgroup import cgroup_memory
from .._base.proc import FD_KINDS, fds_by_kind, psutil, psutil_process
from .._base.section import Section
from .._base.units import clip, format_bytes
from .._base.validate import check_bool, check_int

_CMDLINE_MAX_LIMIT = 65536


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
        if key.startswith("fds.") or key in ("num_fds", "num_threads"):
            return 16.0  # resources: an fd or a thread that is never given back is a leak
        if key.startswith("cgroup.") or key in ("vms_bytes", "percent"):
            return 0.05
        return 1.0

    def describe(self, key: str) -> str:
        """``open fds: sockets`` for a kind of fd, the dotted key otherwise."""
        if key.startswith("fds."):
            return f"process: open fds: {key[4:]}"
        return super().describe(key)

    def summary_lines(self, top: int = 10) -> list[str]:
        """rss/vms/fds/threads, fds by kind, system memory, cgroup limit, children."""
        fds = self.get("num_fds")
        head = (
            f"rss {format_bytes(self.get('rss_bytes') or 0)} "
            f"(vms {format_bytes(self.get('vms_bytes') or 0)}), "
            f"{'?' if fds is None else fds} fds, {self.get('num_threads')} threads"
        )
        if self.get("uss_bytes") is not None:
            head += f", uss {format_bytes(self['uss_bytes'])}"
        lines = [head]
        kinds = self.get("fds")
        if isinstance(kinds, dict):
            shown = ", ".join(f"{kinds[k]} {k}" for k in FD_KINDS if kinds.get(k))
            lines.append(f"open fds: {shown or 'none'}")
        elif fds is not None:
            lines.append(f"open fds by kind: {self.get('fds_note') or 'unavailable'}")
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
                    f"{format_bytes(row.get('rss_bytes') or 0)}  {clip(row.get('cmdline'), 60)}"
                )
        return lines


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
        check_bool("uss", uss)
        check_bool("children", children)
        check_int("max_children", max_children, low=0, high=100_000)
        check_int("cmdline_max", cmdline_max, low=16, high=_CMDLINE_MAX_LIMIT)
        self.root = os.fspath(root)
        self.uss = uss
        self.children = children
        self.max_children = max_children
        self.cmdline_max = cmdline_max
        self._injected = proc

    def _process(self) -> Any:
        if self._injected is not None:
            return self._injected
        return psutil_process()  # cached per pid: a forked child reads itself

    def collect(self) -> dict[str, Any]:
        """Read this process's memory figures, the system's, the cgroup's and the children's."""
        ps = psutil()
        proc = self._process()
        with proc.oneshot():
            mem = proc.memory_info()
            num_threads = proc.num_threads()
            try:
                num_fds: int | None = proc.num_fds()
            except (AttributeError, ps.AccessDenied, NotImplementedError):
                num_fds = None  # Windows has handles, not fds
        uss: int | None = None
        if self.uss:
            try:
                uss = int(proc.memory_full_info().uss)
            except (AttributeError, ps.AccessDenied, NotImplementedError):
                uss = None
        vm = ps.virtual_memory()
        total = int(vm.total)
        data: dict[str, Any] = {
            "pid": int(proc.pid),
            "rss_bytes": int(mem.rss),
            "vms_bytes": int(mem.vms),
            "uss_bytes": uss,
            "percent": round(100.0 * mem.rss / total, 3) if total else 0.0,
            "num_fds": num_fds,
            "num_threads": int(num_threads),
            **self._fds(proc),
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

    def _fds(self, proc: Any) -> dict[str, Any]:
        pid = None if self._injected is None else int(proc.pid)
        try:
            kinds = fds_by_kind(pid, root=self.root)
        except Exception:  # an odd /proc must not cost the rest of the section
            kinds = None
        if kinds is None:
            return {"fds": None, "fds_note": "unavailable: no /proc/PID/fd to read here"}
        return {"fds": kinds, "fds_note": None}

    def _cgroup(self) -> dict[str, Any] | None:
        try:
            return cgroup_memory(self.root)
        except Exception:  # an odd cgroup filesystem must not cost the rest of the section
            return None

    def _children(self, proc: Any) -> tuple[list[dict[str, Any]], int, int]:
        ps = psutil()
        if self._injected is None and _has_children() is False:
            return [], 0, 0  # the common case costs one syscall instead of a /proc scan
        try:
            kids: Sequence[Any] = proc.children(recursive=True)
        except (ps.NoSuchProcess, ps.AccessDenied):
            return [], 0, 0
        sized: list[tuple[int, Any]] = []
        for kid in kids:
            try:
                rss = int(kid.memory_info().rss)
            except ps.ZombieProcess:
                rss = 0  # exited but not yet reaped: no memory, but still a child
            except (ps.NoSuchProcess, ps.AccessDenied):
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
            except ps.ZombieProcess:
                name, cmdline = "<zombie>", None
            except (ps.NoSuchProcess, ps.AccessDenied):
                name, cmdline = None, None  # it was there a moment ago: keep its size
            rows.append(
                {
                    "pid": int(kid.pid),
                    "name": name,
                    "cmdline": None if cmdline is None else clip(cmdline, self.cmdline_max),
                    "rss_bytes": rss,
                }
            )
        return rows, len(sized), sum(rss for rss, _ in sized)
