"""``memscope shell [--pid PID]``: the interactive tracker (snapshot, compare, top, traceback,
current, objects, containers, leaks, gc, list, python, help, quit), in this process or,
through attach, inside another running CPython process."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import IO

from . import CLIError
from ._common import BAD_INPUT, GONE, Parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope shell``."""
    p = Parser(prog="memscope shell", description=__doc__)
    p.add_argument("--pid", help="run the shell inside this CPython process (through attach)")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the process to answer (default 60)",
    )
    return p


def _connect(path: str, timeout: float) -> socket.socket:
    """Connect to the agent's socket once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except OSError:
                sock.close()
        if time.monotonic() > deadline:
            raise CLIError(f"the shell in the process did not open within {timeout:g} s", GONE)
        time.sleep(0.05)


def relay(sock: socket.socket, stdin: IO[str], stdout: IO[str]) -> None:
    """Show the agent's output; answer each prompt with a line of ``stdin``."""
    from ._tracker import history

    tty = stdin.isatty() and stdout.isatty()
    with history(tty), sock, sock.makefile("rb") as incoming:
        for raw in incoming:
            kind, body = raw[:1], raw[1:]
            try:
                text = json.loads(body)
            except ValueError:
                continue  # not a frame: ignore it
            if kind == b"\x01":
                stdout.write(text)
                stdout.flush()
                continue
            try:
                line = input(text) if tty else stdin.readline()
            except EOFError:
                line = ""
            except KeyboardInterrupt:
                stdout.write("\nKeyboardInterrupt\n")
                line = "\n"  # a fresh prompt, as Python's own REPL does
            if not line:
                sock.shutdown(socket.SHUT_WR)  # end of input: the agent ends the session
                continue
            sock.sendall(line.rstrip("\n").encode() + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    ns = build_parser().parse_args(argv)
    if not ns.timeout > 0:
        raise CLIError(f"--timeout must be > 0 seconds, got {ns.timeout:g}", BAD_INPUT)
    if ns.pid is None:
        from ._tracker import run_tracker

        run_tracker({}, sys.stdin, sys.stdout, keep_history=True)
        return 0
    from ._agent_shell import SOCKET
    from ._inject import agent
    from .attach import parse_pid

    pid = parse_pid(ns.pid, "--pid")

    def session(directory: str) -> None:
        relay(_connect(os.path.join(directory, SOCKET), ns.timeout), sys.stdin, sys.stdout)

    agent(pid, "shell", timeout=ns.timeout, on_started=session)
    return 0
