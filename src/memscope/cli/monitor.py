"""``memscope monitor (--pid PID | -- CMD ARGS...)``: watch a process and its children from
outside (psutil): a line per interval, a JSON Lines record, and a summary with trends.

Exit codes: 0 when the watch ends (duration reached, Ctrl-C, or the target exited: the
summary says how and, for a command, with which code), 1 for bad input, 2 when the pid
does not exist or cannot be read at the start."""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import CLIError
from ._common import BAD_INPUT, Parser

if TYPE_CHECKING:
    from .._snapshot import Snapshot

SAMPLES_KEPT = 10_000  # the summary and --json see the last 10,000 samples (start and peak: all)
SNAPSHOTS_KEPT = 720  # the trends are fitted over the last 720 samples


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope monitor``."""
    p = Parser(prog="memscope monitor", description=__doc__)
    p.add_argument(
        "--pid",
        help="a running process (any program); exit 2 if it cannot be read at the start",
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples (1)")
    p.add_argument(
        "--duration",
        type=float,
        help="stop watching after this many seconds (a command started with -- keeps running)",
    )
    p.add_argument("--record", metavar="FILE", help="append every sample to FILE (.jsonl)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS: start CMD and watch it")
    return p


def read_sample(pid: int, psutil: Any = None) -> Snapshot:
    """One outside reading of ``pid`` as a snapshot with a ``process`` section.

    CLIError (exit 2) when the process is gone or not readable.
    """
    from .._base.proc import psutil as _psutil
    from .._snapshot import Snapshot
    from ..collectors.process import ProcessCollector, ProcessSection
    from ._outside import _gone, cgroup_of

    ps = _psutil() if psutil is None else psutil
    try:
        proc = ps.Process(pid)
        data = ProcessCollector(proc=proc).collect()
        if proc.status() == ps.STATUS_ZOMBIE:
            raise ps.ZombieProcess(pid)
    except (ps.NoSuchProcess, ps.AccessDenied) as exc:
        raise _gone(pid, exc, ps) from exc
    data["cgroup"] = cgroup_of(pid)  # the target's own, not this CLI's
    return Snapshot(
        label=f"monitor {pid}",
        pid=pid,
        python="seen from outside",
        sections={"process": ProcessSection(data)},
    )


class Watch:
    """The readings of one run: bounded samples, start, peak, and the snapshots for trends."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=SAMPLES_KEPT)
        self.snapshots: collections.deque[Snapshot] = collections.deque(maxlen=SNAPSHOTS_KEPT)
        self.first: dict[str, Any] | None = None
        self.peak_rss = 0
        self.peak_children = 0

    def add(self, snap: Snapshot) -> dict[str, Any]:
        """Keep one reading; returns its sample row."""
        process = snap["process"]
        row: dict[str, Any] = {
            "timestamp": snap.timestamp,
            "rss_bytes": int(process["rss_bytes"]),
            "children_rss_bytes": int(process.get("children_rss_bytes") or 0),
            "children_count": int(process.get("children_count") or 0),
            "num_fds": process.get("num_fds"),
            "num_threads": process.get("num_threads"),
        }
        if self.first is None:
            self.first = row
        self.peak_rss = max(self.peak_rss, row["rss_bytes"])
        self.peak_children = max(self.peak_children, row["children_rss_bytes"])
        self.samples.append(row)
        self.snapshots.append(snap)
        return row

    def summary(self) -> dict[str, Any]:
        """Start, end and peak RSS (process and children), growth per minute, steady."""
        from ..monitor._trends import fit

        if self.first is None:  # the command ended before the first sample: the keys, no values
            keys = ("start", "end", "peak")
            empty: dict[str, Any] = {f"{k}_rss_bytes": None for k in keys}
            empty.update({f"{k}_children_rss_bytes": None for k in keys})
            return {"samples": 0, **empty, "growth_bytes_per_minute": None, "steady": None}
        last = self.samples[-1]
        rows = list(self.samples)
        line = fit([r["timestamp"] for r in rows], [r["rss_bytes"] for r in rows])
        return {
            "samples": len(rows),
            "seconds": last["timestamp"] - self.first["timestamp"],
            "start_rss_bytes": self.first["rss_bytes"],
            "end_rss_bytes": last["rss_bytes"],
            "peak_rss_bytes": self.peak_rss,
            "start_children_rss_bytes": self.first["children_rss_bytes"],
            "end_children_rss_bytes": last["children_rss_bytes"],
            "peak_children_rss_bytes": self.peak_children,
            "growth_bytes_per_minute": line.slope * 60.0,
            "steady": line.steady,
            "steady_reason": line.reason,
        }

    def trends(self) -> list[str]:
        """The growing series of the kept snapshots, in words."""
        from ..monitor._trends import trends_of

        return [str(t) for t in trends_of(list(self.snapshots), top=5)]


def _line(row: dict[str, Any], first: dict[str, Any], start: float) -> str:
    from .._base.units import format_bytes, format_value

    change = format_value(row["rss_bytes"] - first["rss_bytes"], "bytes", signed=True)
    kids = ""
    if row["children_count"]:
        kids = f"  children {row['children_count']} {format_bytes(row['children_rss_bytes'])}"
    return (
        f"{row['timestamp'] - start:8.1f}s  rss {format_bytes(row['rss_bytes']):>10} "
        f"({change}){kids}  fds {row['num_fds']}  threads {row['num_threads']}"
    )


def render_summary(watch: Watch, why: str) -> str:
    """The summary block printed at the end."""
    from .._base.units import format_bytes, format_value

    s = watch.summary()
    if not s["samples"]:
        return f"memscope monitor: pid {watch.pid}: no sample taken ({why})"
    lines = [
        f"memscope monitor: pid {watch.pid}, {s['samples']} samples over {s['seconds']:.1f} s "
        f"({why})",
        f"  rss       start {format_bytes(s['start_rss_bytes'])}, "
        f"end {format_bytes(s['end_rss_bytes'])}, peak {format_bytes(s['peak_rss_bytes'])}",
        f"  children  start {format_bytes(s['start_children_rss_bytes'])}, "
        f"end {format_bytes(s['end_children_rss_bytes'])}, "
        f"peak {format_bytes(s['peak_children_rss_bytes'])}",
        f"  growth    {format_value(s['growth_bytes_per_minute'], 'bytes', signed=True)}/min, "
        + ("steady" if s["steady"] else f"not steady: {s['steady_reason']}"),
    ]
    trends = watch.trends()
    lines.extend(f"  trend     {t}" for t in trends)
    return "\n".join(lines)


class View:
    """How samples are shown: a plain line each (the default, and always when piped)."""

    def show(self, text: str, snap: Snapshot, watch: Watch) -> None:
        """Show one sample."""
        print(text, flush=True)

    def close(self) -> None:
        """The run ended."""


class Quiet(View):
    """--json: nothing until the end."""

    def show(self, text: str, snap: Snapshot, watch: Watch) -> None:
        """Nothing."""


class RichLines(View):
    """On a TTY with a command's output passing through: the lines, styled."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(highlight=False)

    def show(self, text: str, snap: Snapshot, watch: Watch) -> None:
        """One styled line."""
        self._console.print(text, style="cyan")


class LiveTable(View):
    """On a TTY watching --pid: a live table of the process and its children, and a bar."""

    ROWS = 12  # the process and its 11 largest children

    def __init__(self, duration: float | None) -> None:
        from rich.live import Live

        self._duration = duration
        self._first_rss: dict[int, int] = {}  # pid -> RSS when first seen (bounded below)
        self._who: dict[str, str] | None = None
        self._live = Live(refresh_per_second=4, transient=False)
        self._live.start()

    def _identity(self, pid: int) -> dict[str, str]:
        """The watched process's name and command line, read once."""
        if self._who is None:
            from .._base.proc import psutil

            ps = psutil()
            try:
                proc = ps.Process(pid)
                self._who = {"name": proc.name(), "cmdline": " ".join(proc.cmdline())}
            except (ps.NoSuchProcess, ps.AccessDenied):
                self._who = {"name": "?", "cmdline": ""}
        return self._who

    def _table(self, snap: Snapshot, watch: Watch) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        from .._base.units import clip, format_bytes, format_value

        process = snap["process"]
        elapsed = snap.timestamp - (watch.first or {}).get("timestamp", snap.timestamp)
        table = Table(title=f"memscope monitor: pid {watch.pid}, {elapsed:.0f} s", expand=False)
        for name, justify in (("pid", "right"), ("name", "left"), ("command", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        table.add_column("RSS", justify="right")
        table.add_column("since start", justify="right")
        rows = [{**self._identity(watch.pid), "pid": watch.pid, "rss_bytes": process["rss_bytes"]}]
        rows += list(process.get("children") or [])[: self.ROWS - 1]
        for row in rows:
            pid, rss = int(row["pid"]), int(row.get("rss_bytes") or 0)
            if len(self._first_rss) < 10_000:
                self._first_rss.setdefault(pid, rss)
            change = rss - self._first_rss.get(pid, rss)
            table.add_row(
                str(pid),
                str(row.get("name") or "?"),
                clip(row.get("cmdline") or "", 50),
                format_bytes(rss),
                format_value(change, "bytes", signed=True),
            )
        if self._duration is None:
            return table
        bar = ProgressBar(total=self._duration, completed=min(elapsed, self._duration), width=50)
        return Group(table, bar)

    def show(self, text: str, snap: Snapshot, watch: Watch) -> None:
        """Redraw the table."""
        self._live.update(self._table(snap, watch), refresh=True)

    def close(self) -> None:
        """Leave the last table on screen."""
        self._live.stop()


def make_view(json_out: bool, command: bool, duration: float | None) -> View:
    """The view for this run: rich on a TTY when installed, plain lines otherwise."""
    if json_out:
        return Quiet()
    if sys.stdout.isatty():
        try:
            import rich  # noqa: F401 - an extra: plain lines without it
        except ImportError:
            return View()
        return RichLines() if command else LiveTable(duration)
    return View()


def _check(ns: argparse.Namespace) -> tuple[int | None, list[str]]:
    cmd = list(ns.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not ns.interval > 0:
        raise CLIError(f"--interval must be > 0 seconds, got {ns.interval:g}", BAD_INPUT)
    if ns.duration is not None and not ns.duration > 0:
        raise CLIError(f"--duration must be > 0 seconds, got {ns.duration:g}", BAD_INPUT)
    if (ns.pid is None) == (not cmd):
        raise CLIError("give exactly one of --pid PID or -- CMD ARGS...", BAD_INPUT)
    if ns.pid is None:
        return None, cmd
    from .attach import parse_pid

    return parse_pid(ns.pid, "--pid"), cmd


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import memscope

    ns = build_parser().parse_args(argv)
    pid, cmd = _check(ns)
    if ns.record:
        try:  # before a command starts: a bad path must not leave it running unwatched
            open(ns.record, "a").close()
        except OSError as exc:
            raise CLIError(f"--record: cannot write {ns.record}: {exc.strerror or exc}") from exc
    child: subprocess.Popen[bytes] | None = None
    if pid is None:
        try:
            child = subprocess.Popen(cmd)  # its output passes through
        except OSError as exc:
            raise CLIError(f"cannot start {cmd[0]!r}: {exc.strerror or exc}", BAD_INPUT) from exc
        pid = child.pid
    watch = Watch(pid)
    view = make_view(ns.json, child is not None, ns.duration)
    start = time.time()
    deadline = None if ns.duration is None else time.monotonic() + ns.duration
    why = "duration reached"
    exit_code: int | None = None  # the command's, when it ended
    try:
        next_at = time.monotonic()
        while True:
            if child is not None and child.poll() is not None:
                exit_code = child.returncode
                why = f"the command exited with code {exit_code}"
                break
            try:
                snap = read_sample(pid)
            except CLIError as exc:
                if child is not None and child.poll() is not None:
                    continue  # it exited between the two looks: the check above says so
                if watch.first is None:
                    raise  # not there (or not readable) at the start: exit 2
                gone = "access denied" not in str(exc)
                why = "the process exited" if gone else f"the process can no longer be read: {exc}"
                break
            row = watch.add(snap)
            if ns.record:
                try:
                    memscope.save(snap, ns.record)
                except OSError as exc:
                    raise CLIError(
                        f"--record: cannot write {ns.record}: {exc.strerror or exc}"
                    ) from exc
            assert watch.first is not None
            view.show(_line(row, watch.first, start), snap, watch)
            next_at += ns.interval
            now = time.monotonic()
            if deadline is not None and min(next_at, deadline) >= deadline:
                time.sleep(max(0.0, deadline - now))
                break
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=max(0.0, next_at - now))
            else:
                time.sleep(max(0.0, next_at - now))
    except KeyboardInterrupt:
        why = "interrupted"
        if child is not None:
            try:
                child.wait(timeout=10)  # it got the same Ctrl-C
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait(timeout=10)
            exit_code = child.returncode
    finally:
        view.close()
    if ns.json:
        out = {
            "pid": pid,
            "samples": list(watch.samples),
            "summary": watch.summary(),
            "end": why,
            "exit_code": exit_code,
        }
        print(json.dumps(out, indent=2))
    else:
        print(render_summary(watch, why), flush=True)
    return 0
