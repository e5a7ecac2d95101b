"""The ``memscope`` command line: one module per subcommand, each ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "attach": ("attach", "a snapshot taken inside a running CPython process (PID), no restart"),
    "diff": ("diff", "what changed between two saved snapshots (FILE or FILE:INDEX)"),
    "monitor": ("monitor", "watch a process (--pid) or a command (-- CMD) from outside over time"),
    "plot": ("plot", "draw RSS and the top types or modules over time from a .jsonl, as a PNG"),
    "report": (
        "report",
        "print a report of this process, of a saved snapshot file, or of any process (--pid)",
    ),
    "run": ("run", "run a Python script (-- script.py ARGS, or -m module) under memscope"),
    "shell": (
        "shell",
        "the interactive tracker (snapshot, compare, top, ...), here or inside a process (--pid)",
    ),
    "show": ("show", "print one saved snapshot (FILE or FILE:INDEX)"),
}


class CLIError(Exception):
    """An error the CLI reports in one line, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``memscope <command> ...``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="memscope", description="See the memory of Python.")
    parser.add_argument(
        "command",
        choices=sorted(COMMANDS),
        help="; ".join(f"{name}: {text}" for name, (_, text) in COMMANDS.items()),
    )
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    if args[0] not in COMMANDS:
        accepted = ", ".join(sorted(COMMANDS))
        message = f"memscope: error: unknown command {args[0]!r}; accepted: {accepted}"
        print(message, file=sys.stderr)
        return 1
    ns = parser.parse_args(args[:1])
    module = importlib.import_module(f"{__name__}.{COMMANDS[ns.command][0]}")
    try:
        code: int = module.main(args[1:])
        sys.stdout.flush()
    except CLIError as exc:
        print(f"memscope {ns.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # the reader went away (memscope report --json | head): stop quietly, as Unix
        # tools do; stdout goes to /dev/null so the interpreter's own flush cannot fail
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code
