"""Any process seen from outside (Python or not), read with psutil: ``memscope report --pid``."""

from __future__ import annotations

import os
from typing import Any

from .._base import cgroup as _cgroup
from .._base.proc import psutil as _psutil
from .._base.units import clip, format_bytes
from . import CLIError
from ._common import GONE

CMDLINE_CHARS = 80  # a child's command line is clipped to this in the text view


def cgroup_of(pid: int, root: str = "/") -> dict[str, Any] | None:
    """The memory cgroup of process ``pid``: ``{"version", "limit_bytes", "usage_bytes", "path"}``.

    None outside a memory cgroup or when /proc/PID/cgroup cannot be read.
    """
    # _base.cgroup.cgroup_memory() reads /proc/self/cgroup only; the location logic is the
    # same for any pid, so the pid's own cgroup text goes through the same resolver (files
    # are found through this process's mounts, which is what a host-side reader sees)
    text = _cgroup._read_text(os.path.join(root, "proc", str(pid), "cgroup"))
    if text is None:
        return None
    location = _cgroup._locate(root, text)
    return None if location is None else location.read()


def _gone(pid: int, exc: Exception, psutil: Any) -> CLIError:
    if isinstance(exc, psutil.ZombieProcess):
        return CLIError(f"--pid {pid}: the process is a zombie (exited, not yet reaped)", GONE)
    if isinstance(exc, psutil.NoSuchProcess):
        return CLIError(f"--pid {pid}: no such process (gone, or never existed)", GONE)
    return CLIError(f"--pid {pid}: access denied (run as the process's user, or as root)", GONE)


def _child_row(child: Any, psutil: Any) -> dict[str, Any] | None:
    """One child as a row, None when it exited while being read."""
    try:
        with child.oneshot():
            row: dict[str, Any] = {"pid": child.pid, "ppid": child.ppid(), "name": child.name()}
            try:
                row["cmdline"] = child.cmdline()
                row["rss_bytes"] = int(child.memory_info().rss)
            except psutil.AccessDenied:
                row.setdefault("cmdline", None)
                row["rss_bytes"] = None
    except psutil.NoSuchProcess:
        return None
    return row


def process_view(pid: int, psutil: Any = None) -> dict[str, Any]:
    """What the OS says about process ``pid``'s memory; CLIError (exit 2) if gone or denied.

    ``psutil`` is the psutil module (injectable for tests).
    """
    ps = _psutil() if psutil is None else psutil
    try:
        proc = ps.Process(pid)
        with proc.oneshot():
            mem = proc.memory_info()
            view: dict[str, Any] = {
                "pid": pid,
                "name": proc.name(),
                "status": proc.status(),
                "rss_bytes": int(mem.rss),
                "vms_bytes": int(mem.vms),
                "num_threads": int(proc.num_threads()),
            }
            try:
                view["cmdline"] = proc.cmdline()
            except ps.AccessDenied:
                view["cmdline"] = None
            try:
                view["num_fds"] = int(proc.num_fds())
            except (ps.AccessDenied, AttributeError):  # another user's, or Windows
                view["num_fds"] = None
            # USS/PSS/swap come from /proc/PID/smaps, which only the owner (or root) may read
            try:
                full = proc.memory_full_info()
                view["uss_bytes"] = int(full.uss)
                view["pss_bytes"] = int(getattr(full, "pss", 0)) or None
                view["swap_bytes"] = int(getattr(full, "swap", 0))
                view["full_info"] = None
            except ps.AccessDenied:
                view.update(uss_bytes=None, pss_bytes=None, swap_bytes=None)
                view["full_info"] = "access denied (USS/PSS/swap need the owner or root)"
        children = proc.children(recursive=True)
    except (ps.NoSuchProcess, ps.AccessDenied) as exc:
        raise _gone(pid, exc, ps) from exc
    rows = [row for child in children if (row := _child_row(child, ps)) is not None]
    view["children"] = rows
    view["children_count"] = len(rows)
    view["children_rss_bytes"] = sum(r["rss_bytes"] or 0 for r in rows)
    view["cgroup"] = cgroup_of(pid)
    return view


def _command(args: list[str] | None, fallback: str) -> str:
    """A command line on one clipped line (``python -c`` code often spans several)."""
    return clip(" ".join(" ".join(args).split()) if args else fallback, CMDLINE_CHARS)


def _size(value: int | None) -> str:
    return "n/a" if value is None else format_bytes(value)


def _tree(view: dict[str, Any]) -> list[str]:
    """The children as an indented tree under the process."""
    by_parent: dict[int, list[dict[str, Any]]] = {}
    for row in view["children"]:
        by_parent.setdefault(row["ppid"], []).append(row)
    lines: list[str] = []

    def walk(parent: int, depth: int) -> None:
        for row in by_parent.get(parent, []):
            cmd = _command(row["cmdline"], row["name"])
            lines.append(
                f"  {'  ' * depth}{row['pid']:>7}  {_size(row['rss_bytes']):>10}  "
                f"{row['name']}: {cmd}"
            )
            walk(row["pid"], depth + 1)

    walk(view["pid"], 0)
    return lines


def render(view: dict[str, Any]) -> str:
    """Plain-text lines of :func:`process_view`'s dict."""
    cmd = _command(view["cmdline"], "(command line not readable)")
    lines = [
        f"memscope process {view['pid']} ({view['name']}, {view['status']}): {cmd}",
        f"  rss      {_size(view['rss_bytes']):>10}",
        f"  vms      {_size(view['vms_bytes']):>10}",
        f"  uss      {_size(view['uss_bytes']):>10}",
        f"  pss      {_size(view['pss_bytes']):>10}",
        f"  swap     {_size(view['swap_bytes']):>10}",
    ]
    if view["full_info"]:
        lines.append(f"  (uss/pss/swap: {view['full_info']})")
    fds = "n/a" if view["num_fds"] is None else str(view["num_fds"])
    lines.append(f"  fds      {fds:>10}")
    lines.append(f"  threads  {view['num_threads']:>10}")
    group = view["cgroup"]
    if group is None:
        lines.append("  cgroup   none with a memory controller")
    else:
        limit = "no limit" if group["limit_bytes"] is None else _size(group["limit_bytes"])
        lines.append(
            f"  cgroup   v{group['version']} {group['path']}: "
            f"usage {_size(group['usage_bytes'])}, limit {limit}"
        )
    lines.append(
        f"  children {view['children_count']:>10}  total rss {_size(view['children_rss_bytes'])}"
    )
    lines.extend(_tree(view))
    return "\n".join(lines)
