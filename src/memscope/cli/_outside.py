"""Any process seen from outside (Python or not), read with psutil: ``memscope report --pid``."""

from __future__ import annotations

import os
from typing import Any

from .._base import cgroup as _cgroup
from .._base.proc import psutil as _psutil
from .._base.proc import read_kb_fields, smaps_rollup, thread_stacks
from .._base.units import clip, format_bytes
from . import CLIError
from ._common import GONE

CMDLINE_CHARS = 80  # a child's command line is clipped to this in the text view

_STATUS_FIELDS = {
    b"VmRSS:": "rss_bytes",
    b"RssAnon:": "anon_bytes",
    b"RssFile:": "file_bytes",
    b"RssShmem:": "shmem_bytes",
    b"Threads:": "threads",
}
_PART_WORDS = {
    "thread_stacks": "thread stacks",
    "other_anon": "other anonymous (heaps, arenas)",
    "file": "file-backed",
    "shmem": "shared memory",
}


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
    view["accounting"] = outside_accounting(pid)
    return view


def outside_accounting(pid: int, root: str = "/") -> dict[str, Any] | None:
    """RSS in the parts another process's /proc shows: anonymous (its thread stacks
    apart), file-backed and shared, from ``/proc/PID/status``; PSS and swap from
    ``smaps_rollup`` and the stacks from ``smaps`` where the caller may read them.

    The parts add up to RSS. None without a readable /proc/PID/status (not Linux, gone).
    What is inside the anonymous part (objects, allocators) needs ``memscope attach``.
    """
    try:
        status = read_kb_fields(os.path.join(root, "proc", str(pid), "status"), _STATUS_FIELDS)
    except OSError:
        return None
    if "anon_bytes" not in status:
        return None
    anon, file, shmem = (status.get(k, 0) for k in ("anon_bytes", "file_bytes", "shmem_bytes"))
    stacks = thread_stacks(pid, root=root)
    stack_bytes = min(stacks["bytes"], anon) if stacks is not None else None
    parts = {
        "thread_stacks": stack_bytes,
        "other_anon": anon - (stack_bytes or 0),
        "file": file,
        "shmem": shmem,
    }
    rss = anon + file + shmem
    rows = [
        {"part": name, "bytes": size, "percent": round(100 * size / rss, 1) if rss else 0.0}
        for name, size in parts.items()
        if size is not None
    ]
    if stacks is None:
        note = "thread stacks: /proc/PID/smaps is not readable (run as its user, or as root)"
    elif stacks["measured"] < stacks["threads"]:
        note = (
            f"thread stacks: {stacks['measured']} of {stacks['threads']} threads measured "
            "(the others were running, or their stack pointers are not ours to read: "
            "ptrace rules); the rest are in other anonymous"
        )
    else:
        note = None
    return {
        "rss_bytes": rss,
        "anon_bytes": anon,
        "file_bytes": file,
        "shmem_bytes": shmem,
        "threads": status.get("threads"),
        "threads_measured": None if stacks is None else stacks["measured"],
        "parts": rows,
        "smaps": smaps_rollup(pid, root=root),
        "note": note,
    }


def _accounting_lines(acc: dict[str, Any] | None) -> list[str]:
    """The parts of RSS as indented lines, PSS and swap, and a note."""
    if acc is None:
        return ["  where RSS goes: /proc/PID/status has no RssAnon (not Linux 4.5+)"]
    rss = acc["rss_bytes"]
    lines = ["  where RSS goes (the parts add up to it):"]
    width = max(len(_PART_WORDS[row["part"]]) for row in acc["parts"])
    for row in acc["parts"]:
        lines.append(
            f"    {_PART_WORDS[row['part']]:<{width}} {format_bytes(row['bytes']):>10} "
            f"{row['bytes'] / rss:6.1%}"
            if rss
            else f"    {_PART_WORDS[row['part']]:<{width}} {format_bytes(row['bytes']):>10}"
        )
    smaps = acc["smaps"]
    if smaps is not None and "pss_bytes" in smaps:
        lines.append(
            f"    PSS {format_bytes(smaps['pss_bytes'])} (anonymous "
            f"{format_bytes(smaps.get('pss_anon_bytes', 0))}, file "
            f"{format_bytes(smaps.get('pss_file_bytes', 0))}, shared memory "
            f"{format_bytes(smaps.get('pss_shmem_bytes', 0))}), swap "
            f"{format_bytes(smaps.get('swap_bytes', 0))}"
        )
    if acc["note"]:
        lines.append(f"    ({acc['note']})")
    if rss:
        main = max(acc["parts"], key=lambda row: row["bytes"])
        lines.append(
            f"    most of RSS is {_PART_WORDS[main['part']]} "
            f"({main['bytes'] / rss:.0%}): {_OUTSIDE_ADVICE[main['part']]}"
        )
    return lines


_OUTSIDE_ADVICE = {
    "thread_stacks": "fewer threads, or a smaller stack size for new ones",
    "other_anon": (
        "the heaps: for a Python process, `memscope attach PID` splits it into live "
        "objects, allocators' free space and other native memory"
    ),
    "file": "code and mapped files: clean pages are shared, and dropped under pressure",
    "shmem": "shared memory (multiprocessing, /dev/shm, memfd)",
}


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
    if "accounting" in view:
        lines.extend(_accounting_lines(view["accounting"]))
    return "\n".join(lines)
