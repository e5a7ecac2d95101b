"""``memscope report``: a report of this process, or of snapshots saved as JSON Lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import CLIError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope report``."""
    p = argparse.ArgumentParser(prog="memscope report", description=__doc__)
    p.add_argument("file", nargs="?", help="a .jsonl file of snapshots (default: this process)")
    p.add_argument(
        "--deep", action="store_true", help="add the heap scans (census, containers, large objects)"
    )
    p.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    p.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    p.add_argument(
        "--compare",
        action="store_true",
        help="with FILE: compare the first and last snapshot in it",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import memscope

    ns = build_parser().parse_args(argv)
    if ns.top < 1:
        raise CLIError(f"--top must be >= 1, got {ns.top}")
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
        diff = memscope.compare(snaps[0], snaps[-1])
        print(json.dumps(diff.to_dict(), indent=2) if ns.json else diff.summary(top=ns.top))
        return 0
    last = snaps[-1]
    print(last.to_json(indent=2) if ns.json else last.report(top=ns.top))
    sys.stdout.flush()
    return 0
