"""``memscope report``: a report of this process, of snapshots saved as JSON Lines, or of any
process seen from outside (``--pid``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import CLIError
from ._common import Parser

if TYPE_CHECKING:
    from .._snapshot import Snapshot


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope report``."""
    p = Parser(prog="memscope report", description=__doc__)
    p.add_argument("file", nargs="?", help="a .jsonl file of snapshots (default: this process)")
    p.add_argument(
        "--deep", action="store_true", help="add the heap scans (census, containers, large objects)"
    )
    p.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    p.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    p.add_argument(
        "--pid",
        help="any process (Python or not), seen from outside: RSS, USS/PSS, swap, fds, "
        "threads, children, cgroup, and where RSS goes (thread stacks, other anonymous, "
        "file-backed, shared)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="with FILE: compare the first and last snapshot in it",
    )
    return p


def pick_pair(snaps: Sequence[Snapshot]) -> tuple[int, int]:
    """The first and last snapshots with the most sections (a Monitor's deep ones among
    cheap ones), so heap scans are compared too; the two ends when that is no better."""
    most = max(len(s.sections) for s in snaps)
    full = [k for k, s in enumerate(snaps) if len(s.sections) == most]
    if len(full) >= 2 and len(snaps[0].sections) + len(snaps[-1].sections) < 2 * most:
        return full[0], full[-1]
    return 0, len(snaps) - 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import memscope

    ns = build_parser().parse_args(argv)
    if ns.top < 1:
        raise CLIError(f"--top must be >= 1, got {ns.top}")
    if ns.pid is not None:
        return _outside_report(ns)
    if ns.file is not None and ns.deep:
        raise CLIError("--deep takes a snapshot of this process; a FILE's snapshots are as saved")
    if ns.file is None:
        if ns.compare:
            raise CLIError("--compare needs a FILE of saved snapshots")
        snap = memscope.snapshot(label="report", deep=ns.deep)
        print(snap.to_json(indent=2) if ns.json else snap.report(top=ns.top))
        return 0
    try:
        snaps = memscope.load(ns.file)
    except OSError as exc:
        raise CLIError(f"cannot read {ns.file}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    if not snaps:
        raise CLIError(f"{ns.file} holds no snapshots")
    if ns.compare:
        if len(snaps) < 2:
            raise CLIError(f"--compare needs two snapshots; {ns.file} holds one")
        i, j = pick_pair(snaps)
        diff = memscope.compare(snaps[i], snaps[j])
        if ns.json:
            print(json.dumps({**diff.to_dict(), "indexes": [i, j]}, indent=2))
        else:
            if (i, j) != (0, len(snaps) - 1):
                print(
                    f"(snapshots #{i} and #{j} of {len(snaps)}: the first and last that have "
                    "every section, e.g. a Monitor's deep ones)"
                )
            print(diff.summary(top=ns.top))
        return 0
    last = snaps[-1]
    print(last.to_json(indent=2) if ns.json else last.report(top=ns.top))
    sys.stdout.flush()
    return 0


def _outside_report(ns: argparse.Namespace) -> int:
    """``report --pid PID``: exit 1 for a bad argument, 2 when the process is gone or denied."""
    from ._common import BAD_INPUT
    from ._outside import process_view, render

    try:
        pid = int(ns.pid)
    except ValueError:
        pid = 0
    if pid < 1:
        raise CLIError(f"--pid takes a process id (an integer >= 1), got {ns.pid!r}", BAD_INPUT)
    for flag, given in (
        ("FILE", ns.file is not None),
        ("--deep", ns.deep),
        ("--compare", ns.compare),
    ):
        if given:
            raise CLIError(
                f"--pid reads a live process from outside; {flag} does not apply", BAD_INPUT
            )
    view = process_view(pid)
    print(json.dumps(view, indent=2) if ns.json else render(view))
    return 0
