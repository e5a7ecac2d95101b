"""``memscope attach PID``: a memscope snapshot taken inside a running CPython process that was
started without memscope (sys.remote_exec on 3.14+, gdb on 3.10-3.13)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import CLIError
from ._common import BAD_INPUT, Parser, positive_int


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope attach``."""
    p = Parser(prog="memscope attach", description=__doc__)
    p.add_argument("pid", metavar="PID", help="the process id of a running CPython program")
    p.add_argument(
        "--deep", action="store_true", help="add the heap scans (census, containers, large objects)"
    )
    p.add_argument(
        "--explain",
        metavar="TYPE",
        help="instead of a snapshot: why objects of TYPE (a qualified type name, like "
        "app.models.Model) are alive in the target (memscope.explain run there)",
    )
    p.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="also append the snapshot to FILE (.jsonl)"
    )
    p.add_argument("--top", type=positive_int, default=10, help="rows per table (default 10)")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the snapshot (default 60)",
    )
    return p


def parse_pid(text: str, name: str = "PID") -> int:
    """A process id argument; CLIError (exit 1) naming ``name`` otherwise."""
    try:
        pid = int(text)
    except ValueError:
        pid = 0
    if pid < 1:
        raise CLIError(f"{name} takes a process id (an integer >= 1), got {text!r}", BAD_INPUT)
    return pid


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import memscope

    from ._inject import agent

    ns = build_parser().parse_args(argv)
    pid = parse_pid(ns.pid)
    if not ns.timeout > 0:
        raise CLIError(f"--timeout must be > 0 seconds, got {ns.timeout:g}", BAD_INPUT)
    if ns.explain is not None:
        return _explain(pid, ns)
    answer = agent(pid, "snapshot", timeout=ns.timeout, deep=ns.deep, label=f"attach {pid}")
    snap = memscope.Snapshot.from_dict(answer["snapshot"])
    if ns.output:
        try:
            memscope.save(snap, ns.output)
        except OSError as exc:
            raise CLIError(f"-o: cannot write {ns.output}: {exc.strerror or exc}") from exc
    print(snap.to_json(indent=2) if ns.json else snap.report(top=ns.top))
    sys.stdout.flush()
    left = answer.get("footprint", {}).get("modules_left") or []
    note = f"; {len(left)} stdlib modules it imported stay loaded" if left else ""
    print(
        f"(taken inside pid {pid} in {answer.get('seconds', 0.0):.2f} s via "
        f"{answer['injected'].split()[0]}; memscope's modules and paths removed again{note})",
        file=sys.stderr,
    )
    return 0


def _explain(pid: int, ns: argparse.Namespace) -> int:
    """``attach PID --explain TYPE``: explain() run inside the target; its text printed."""
    import json

    from ._inject import agent

    name = ns.explain.strip()
    if not name or any(not part.isidentifier() for part in name.split(".")):
        raise CLIError(
            f"--explain takes a qualified type name (like app.models.Model), got {ns.explain!r}",
            BAD_INPUT,
        )
    for flag, given in (("--deep", ns.deep), ("-o", ns.output)):
        if given:
            raise CLIError(f"{flag} is for snapshots; it does not go with --explain", BAD_INPUT)
    # the search gets most of the time; the rest is the injection and the answer
    options = {"explain": name, "explain_timeout": max(ns.timeout * 0.75, 0.1)}
    answer = agent(pid, "explain", timeout=ns.timeout, label=f"attach {pid}", options=options)
    found = answer["explanation"]
    print(json.dumps(found["data"], indent=2) if ns.json else found["report"])
    sys.stdout.flush()
    print(
        f"(explained inside pid {pid} in {answer.get('seconds', 0.0):.2f} s via "
        f"{answer['injected'].split()[0]}; memscope's modules and paths removed again)",
        file=sys.stderr,
    )
    return 0
