"""``memscope diff A B``: what changed from one saved snapshot to another."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ._common import Parser, load_ref, positive_int
from .show import REF_HELP


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope diff``."""
    p = Parser(prog="memscope diff", description=__doc__)
    p.add_argument("a", metavar="A", help="the earlier snapshot: " + REF_HELP)
    p.add_argument("b", metavar="B", help="the later snapshot, same forms as A")
    p.add_argument("--top", type=positive_int, default=15, help="changes shown (default 15)")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import memscope

    ns = build_parser().parse_args(argv)
    a = load_ref("A", ns.a)
    b = load_ref("B", ns.b)
    diff = memscope.compare(a, b)
    print(json.dumps(diff.to_dict(), indent=2) if ns.json else diff.summary(top=ns.top))
    return 0
