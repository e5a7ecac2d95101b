"""Hundreds of malformed requests over real HTTP: none gets a 5xx, and the app serves after.

Raw sockets, so the requests can be what no HTTP client would send: odd methods and
paths, repeated and huge parameters, broken percent-encodings, huge and odd headers.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import AUTH, TOKEN, Server, demo_service

pytestmark = pytest.mark.slow

ENDPOINTS = [
    "",
    "status",
    "top",
    "objects",
    "containers",
    "caches",
    "leaks",
    "tasks",
    "history",
    "snapshots",
    "metrics",
    "gc",
    "snapshot",
    "compare",
    "clear_caches",
    "release",
    "static/app.js",
    "static/style.css",
    "index.html",
]
POSTS = {"gc", "snapshot", "compare", "clear_caches", "release"}
METHODS = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "HEAD",
    "TRACE",
    "get",
    "FOO",
    "PROPFIND",
    "G\x01T",
    "GET" * 40,
]
ODD_PATHS = [
    "/_debug/memory/../../etc/passwd",
    "/_debug/memory/static/../app.py",
    "/_debug/memory/static/%2e%2e/app.py",
    "/_debug/memory/static/..%2f..%2fapp.py",
    "/_debug/memory//status",
    "/_debug/memory/status/",
    "/_debug/memory/%ff%fe",
    "/_debug/memory/%",
    "/_debug/memory/%zz",
    "/_debug/memory/" + "a" * 5000,
    "/_debug/memory/status%00",
    "/_debug/memory/st%61tus",
    "*",
    "/_debug/memory/\u00e9",
    "/_debug/memory/static/",
    "/_debug/memory/static/nope.js",
    "http://evil/_debug/memory/",
    "/_debug/memory/;status",
    "/_debug/memory/status#frag",
]
ODD_QUERIES = [
    "limit=",
    "limit=-1",
    "limit=1e9",
    "limit=0x10",
    "limit=%00",
    "limit=%",
    "limit=%zz",
    "limit=%ff",
    "limit=%c3%28",
    "=",
    "&&&",
    "limit",
    "limit=1&" * 200,
    "x" * 100_000,
    "deep=true&deep=false",
    "a=1&b=2&a=3",
    "a=99999999999999999999",
    "a=1&b=1e3",
    "seconds=inf",
    "seconds=-0",
    "seconds=1" + "0" * 400,
    "generation=%20%202",
    "limit=5;6",
    "limit=" + "9" * 50,
    "\u00e9=1",
    "limit=1%2B1",
    "a[]=1",
    "deep=TRUE",
    "deep=%74rue",
]


def header_sets(rng: random.Random) -> Iterator[list[tuple[str, bytes]]]:
    yield []
    yield [("Authorization", f"Bearer {TOKEN}".encode())]
    yield [("Authorization", b"Bearer " + b"x" * 60_000)]
    yield [("Authorization", b"Bearer \xff\xfe\x00")]
    yield [("Authorization", f"Bearer {TOKEN}".encode()), ("Authorization", b"Bearer x")]
    yield [("X-Big", b"y" * 200_000), ("Authorization", f"Bearer {TOKEN}".encode())]
    yield [(f"X-H{i}", b"v") for i in range(300)]
    yield [("Content-Length", b"-5")]
    yield [("Content-Length", b"100000000")]
    yield [("Transfer-Encoding", b"chunked"), ("Authorization", f"Bearer {TOKEN}".encode())]
    yield [("Host", b"")]
    yield [("Bad Header", b"x")]
    yield [("Authorization", f"bearer {TOKEN}".encode()), ("Cookie", b"a=" + b"c" * 9000)]
    while True:
        yield [
            (
                rng.choice(["Accept", "X-Y", "Authorization", "Range"]),
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
                .replace(b"\r", b"")
                .replace(b"\n", b""),
            )
        ]


def requests(rng: random.Random, count: int) -> Iterator[bytes]:
    headers = header_sets(rng)
    for i in range(count):
        endpoint = rng.choice(ENDPOINTS)
        # mostly the method the endpoint takes, so the odd parts reach its handler
        method = (
            ("POST" if endpoint in POSTS else "GET") if rng.random() < 0.7 else rng.choice(METHODS)
        )
        path = rng.choice(ODD_PATHS) if rng.random() < 0.25 else "/_debug/memory/" + endpoint
        if rng.random() < 0.6:
            path += "?" + rng.choice(ODD_QUERIES)
        # the first hundred or so requests walk through every header set once
        extra = (
            next(headers)
            if i < 60 or rng.random() < 0.5
            else [("Authorization", f"Bearer {TOKEN}".encode())]
        )
        lines = [f"{method} {path} HTTP/1.1".encode("utf-8", "surrogateescape"), b"Host: 127.0.0.1"]
        lines += [name.encode() + b": " + value for name, value in extra]
        lines += [b"Connection: close"]
        body = b""
        if rng.random() < 0.2:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2000)))
            lines.append(f"Content-Length: {len(body)}".encode())
        yield b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(port: int, raw: bytes) -> int | None:
    """The response status, or None when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        # refused before it read it all: what it answered still counts
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return None
    status_line = data.split(b"\r\n", 1)[0].split()
    assert status_line[0].startswith(b"HTTP/1."), data[:200]
    return int(status_line[1])


def test_no_input_yields_a_5xx_and_the_app_keeps_serving() -> None:
    app: Any = demo_service(scan_interval=5.0)
    rng = random.Random(20261202)
    statuses: dict[int | None, int] = {}
    try:
        with Server(app, h11_max_incomplete_event_size=256 * 1024) as server:
            for raw in requests(rng, 400):
                status = send(server.port, raw)
                statuses[status] = statuses.get(status, 0) + 1
                assert status is None or status < 500, (status, raw[:300])
            # still serving: the debug app, its dashboard and the host's own route
            with httpx.Client(base_url=server.url, timeout=60) as http:
                assert http.get("/_debug/memory/status", headers=AUTH).status_code == 200
                assert http.get("/_debug/memory/").status_code == 200
                assert http.get("/hello").json() == {"hello": "world"}
    finally:
        app.state.monitor.stop()
    # the run reached the handlers, not just the front door
    assert statuses.get(200, 0) >= 20, statuses
    assert statuses.get(422, 0) >= 20, statuses
    assert statuses.get(401, 0) >= 10, statuses
    assert sum(statuses.values()) == 400
    assert statuses.get(None, 0) < 40, statuses
