"""SSEBuffer end to end: real httpx against a real chunked SSE server on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from memscope.guard.sse import SSEBuffer, SSEOverflowError, aiter_sse, iter_sse

# Cut at awkward places on purpose: inside a CRLF, inside a UTF-8 character, mid-field.
EVENTS_BODY = [
    b"\xef\xbb\xbf: welcome\r\nretry: 1500\r\n\r",
    b"\nid: 1\r\nevent: token\r\ndata: caf\xc3",
    b"\xa9\r\n\r\nid: 2\r\ndata: multi\r\ndata: line\r",
    b"\n\r\ndata: last\r\n\r\n",
]
EXPECTED = [("token", "caf\u00e9", "1"), ("message", "multi\nline", "2"), ("message", "last", "2")]
FLOOD_BYTES = 2 * 1024 * 1024


def flood_body() -> Iterator[bytes]:
    """An upstream that sends one 2 MiB event, then behaves."""
    yield b"data: first\n\ndata: "
    for _ in range(FLOOD_BYTES // 16384):
        yield b"x" * 16384
    yield b"\n\ndata: after\n\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = EVENTS_BODY if self.path == "/events" else list(flood_body())
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for part in body:
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.flush()
                if self.path == "/events":
                    time.sleep(0.01)  # separate TCP reads, so the client sees these chunks
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that gave up on the flood (the raise policy) hangs up early

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_httpx_iter_bytes(server_url: str) -> None:
    buf = SSEBuffer(name="test-http")
    with httpx.Client() as client, client.stream("GET", server_url + "/events") as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = list(iter_sse(response.iter_bytes(), buffer=buf))
    assert [(e.event, e.data, e.id) for e in events] == EXPECTED
    assert buf.retry == 1500
    assert buf.comments_total == 1
    assert len(buf) == 0


@pytest.mark.asyncio
async def test_httpx_aiter_bytes(server_url: str) -> None:
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", server_url + "/events") as response,
    ):
        events = [e async for e in aiter_sse(response.aiter_bytes())]
    assert [(e.event, e.data, e.id) for e in events] == EXPECTED


def test_misbehaving_upstream_skip(server_url: str) -> None:
    buf = SSEBuffer(max_event_bytes=64 * 1024, on_overflow="skip")
    peak = 0
    got = []
    with httpx.Client() as client, client.stream("GET", server_url + "/flood") as response:
        for chunk in response.iter_bytes():
            got += buf.feed(chunk)
            peak = max(peak, len(buf))
    assert [e.data for e in got] == ["first", "after"]
    assert buf.overflows_total == 1
    assert peak <= 64 * 1024


@pytest.mark.asyncio
async def test_misbehaving_upstream_raise(server_url: str) -> None:
    seen = []
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", server_url + "/flood") as response,
    ):
        with pytest.raises(SSEOverflowError, match="max_line_bytes=65536"):
            async for event in aiter_sse(response.aiter_bytes(), max_event_bytes=64 * 1024):
                seen.append(event.data)
    assert seen == ["first"]
