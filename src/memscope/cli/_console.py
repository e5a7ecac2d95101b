"""``memscope.interactive()``: the memscope shell (cli/_tracker.py: snapshot, compare, top,
traceback, current, objects, containers, leaks, gc, list, python, help, quit) inside the
calling process. ``memscope shell`` runs the same tracker inside the CLI's process, and
``memscope shell --pid PID`` inside another process (the agent serves it there over a
private unix socket). Commands come from a TTY with prompts and readline history, or from
any stream one line at a time without prompts (so it can be scripted).
"""

from __future__ import annotations

import sys
from typing import IO, Any

from ._tracker import run_tracker


def interactive(
    local: dict[str, Any] | None = None,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> None:
    """The memscope shell (snapshot, compare, top, ...) inside this process.

    ``local`` is the namespace of its ``python`` command (default: the caller's names);
    ``stdin``/``stdout`` default to the process's. On a TTY it prompts, with readline;
    otherwise it reads one command a line, without prompts (so it can be scripted).
    """
    if local is not None and not isinstance(local, dict):
        raise TypeError(f"local must be a dict or None, got {type(local).__name__}")
    if local is None:
        caller = sys._getframe(1)
        local = {**caller.f_globals, **caller.f_locals}
    source = sys.stdin if stdin is None else stdin
    out = sys.stdout if stdout is None else stdout
    run_tracker(local, source, out, keep_history=False)
