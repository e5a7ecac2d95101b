"""Leak shapes built for real, each diffed by memscope (run in a fresh interpreter).

``python shapes.py NAME`` builds the shape, takes a deep snapshot, leaks for real
(sockets, files, asyncio tasks, a functools.lru_cache on a method, a logging FileHandler
per request, a per-user cache on a service object, a nested registry of per-request
objects, SSL contexts' native memory), takes another and prints ``str(compare(a, b))``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable

import memscope

ROUNDS = 300
_TMP = tempfile.mkdtemp(prefix="memscope-shapes-")

# --- the leaks ---------------------------------------------------------------------------

_sockets: list[socket.socket] = []
_files: dict[str, object] = {}


class Quote:
    """A quote whose price is memoised per instance by an lru_cache on the method."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    @functools.lru_cache(maxsize=None)  # noqa: B019, UP033 (the leak under test)
    def price(self) -> float:
        return float(len(self.symbol))


class ProfileService:
    """A service object with a per-user cache that nothing evicts."""

    def __init__(self) -> None:
        self._rendered: dict[str, bytes] = {}

    def render(self, user: str) -> bytes:
        page = self._rendered.get(user)
        if page is None:
            page = self._rendered[user] = f"<html>{user}</html>".encode() * 100
        return page


service = ProfileService()


class Report:
    """One request's export, filed in a registry by tenant and kind."""

    def __init__(self, n: int) -> None:
        self.rows = bytearray(1000)
        self.n = n


_registry: dict[str, dict[str, dict[int, Report]]] = {"acme": {"exports": {}}}
_contexts: list[ssl.SSLContext] = []


def sockets(n: int, start: int) -> None:
    for _ in range(n):
        _sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))


def files(n: int, start: int) -> None:
    for i in range(start, start + n):
        path = os.path.join(_TMP, f"upload-{i}.bin")
        _files[path] = open(path, "wb")  # noqa: SIM115 (kept open: the leak under test)


def lru(n: int, start: int) -> None:
    for i in range(start, start + n):
        Quote(f"SYM{i}").price()


def handlers(n: int, start: int) -> None:
    log = logging.getLogger("audit")
    for i in range(start, start + n):
        log.addHandler(logging.FileHandler(os.path.join(_TMP, f"audit-{i}.log"), delay=False))


def per_user(n: int, start: int) -> None:
    for i in range(start, start + n):
        service.render(f"user-{i}")


def registry(n: int, start: int) -> None:
    for i in range(start, start + n):
        _registry["acme"]["exports"][i] = Report(i)


_stop = threading.Event()
_pollers: list[threading.Thread] = []


def threads(n: int, start: int) -> None:
    # a poller thread per "connection", never stopped: 1 in 15 rounds
    for i in range(start, start + n // 15):
        t = threading.Thread(target=_stop.wait, name=f"poller-{i}", daemon=True)
        t.start()
        _pollers.append(t)


def native(n: int, start: int) -> None:
    for _ in range(n // 3):
        _contexts.append(ssl.create_default_context())


async def _notify(event: asyncio.Event) -> None:
    await event.wait()


def tasks_shape() -> memscope.Diff:
    async def main() -> memscope.Diff:
        event = asyncio.Event()
        held = [asyncio.ensure_future(_notify(event)) for _ in range(10)]
        await asyncio.sleep(0)
        memscope.snapshot(deep=True)
        gc.collect()
        a = memscope.snapshot(label="before", deep=True)
        held += [asyncio.ensure_future(_notify(event)) for _ in range(ROUNDS)]
        await asyncio.sleep(0)
        gc.collect()
        b = memscope.snapshot(label="after", deep=True)
        event.set()
        await asyncio.gather(*held)
        return memscope.compare(a, b)

    return asyncio.run(main())


SHAPES: dict[str, Callable[[int, int], None]] = {
    "sockets": sockets,
    "files": files,
    "lru": lru,
    "handlers": handlers,
    "per_user": per_user,
    "registry": registry,
    "native": native,
    "threads": threads,
}


def diff_of(name: str) -> memscope.Diff:
    """Warm up, snapshot, leak ``ROUNDS`` times for real, snapshot, compare."""
    if name == "tasks":
        return tasks_shape()
    leak = SHAPES[name]
    leak(10, 0)  # warm up: first imports and allocations are not the leak
    memscope.snapshot(deep=True)  # and memscope's own first-use imports are not either
    gc.collect()
    a = memscope.snapshot(label="before", deep=True)
    leak(ROUNDS, 10)
    gc.collect()
    b = memscope.snapshot(label="after", deep=True)
    return memscope.compare(a, b)


if __name__ == "__main__":
    diff = diff_of(sys.argv[1])
    print(diff)
    print("--- findings")
    for finding in diff.findings():
        print(f"{finding.kind}\t{finding.what}\t{finding.holder}\t{finding.delta}")
