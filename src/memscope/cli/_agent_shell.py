"""The shell the agent serves inside a target process for ``memscope shell --pid``.

One session on a unix socket in the attach's private directory: accepted once (within
``SHELL_ACCEPT_SECONDS``), closed at the end of input, at ``quit()``, or after
``SHELL_IDLE_SECONDS`` of silence. Frames from the agent are lines: ``\\x01`` + a JSON string
for output, ``\\x00`` + a JSON string for a prompt (the client answers with one line).
While the session runs, what the shell's own thread prints goes to the client; every other
thread's output still goes to the program's stdout.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import socket
import sys
from typing import IO, Any

SOCKET = "shell.sock"  # the session's unix socket, in the attach's private directory
SHELL_ACCEPT_SECONDS = 30.0  # a shell nobody connects to is closed after this
SHELL_IDLE_SECONDS = 600.0  # a connected shell silent this long is closed
SHELL_LINE_BYTES = 1 << 16  # longest line a client may send

OUTPUT = b"\x01"
PROMPT = b"\x00"


class _Routed:
    """sys.stdout for the session: this thread's writes to the client, others' as before."""

    def __init__(self, original: IO[str], ident: int, write: Any) -> None:
        self._original = original
        self._ident = ident
        self._send = write

    def write(self, text: str) -> int:
        if _thread.get_ident() == self._ident:
            self._send(text)
            return len(text)
        return self._original.write(text)

    def flush(self) -> None:
        if _thread.get_ident() != self._ident:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def serve(directory: str, request: dict[str, Any]) -> dict[str, Any]:
    """Serve one shell session; returns what it did (``{"shell": {"lines": n}}``)."""
    from ._tracker import Tracker, banner

    path = os.path.join(directory, SOCKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(1)
        listener.settimeout(SHELL_ACCEPT_SECONDS)
        conn, _ = listener.accept()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
    lines = 0
    with conn, conn.makefile("rb") as incoming:
        conn.settimeout(SHELL_IDLE_SECONDS)

        def send(kind: bytes, text: str) -> None:
            conn.sendall(kind + json.dumps(text).encode() + b"\n")

        def write(text: str) -> None:
            send(OUTPUT, text)

        def read_line(prompt: str) -> str:
            nonlocal lines
            send(PROMPT, prompt)
            raw = incoming.readline(SHELL_LINE_BYTES)
            if not raw:
                raise EOFError
            lines += 1
            return raw.decode("utf-8", "replace").rstrip("\r\n")

        main = sys.modules.get("__main__")
        base = {k: v for k, v in vars(main).items() if not k.startswith("__")} if main else {}
        tracker = Tracker(read_line, write, base)
        original = sys.stdout
        routed = _Routed(original, _thread.get_ident(), write)
        sys.stdout = routed
        try:
            write(f"{banner(f' in pid {os.getpid()}')} (quit leaves; the program goes on)\n")
            tracker.run()
        except OSError:
            pass  # the client went away or fell silent: the session ends
        finally:
            if sys.stdout is routed:
                sys.stdout = original
    return {"shell": {"lines": lines}}
