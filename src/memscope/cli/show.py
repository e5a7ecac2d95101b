"""``memscope show A``: one saved snapshot, as a report or as JSON."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._common import Parser, load_ref, positive_int

REF_HELP = "PATH (a .json snapshot, or the last of a .jsonl) or PATH:INDEX (negative: from the end)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope show``."""
    p = Parser(prog="memscope show", description=__doc__)
    p.add_argument("a", metavar="A", help=REF_HELP)
    p.add_argument("--top", type=positive_int, default=10, help="rows per table (default 10)")
    p.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    ns = build_parser().parse_args(argv)
    snap = load_ref("A", ns.a)
    print(snap.to_json(indent=2) if ns.json else snap.report(top=ns.top))
    return 0
