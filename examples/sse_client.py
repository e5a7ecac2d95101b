"""Stream Server-Sent Events with httpx through memscope's bounded SSEBuffer.

Run: python examples/sse_client.py

Starts a tiny SSE server on 127.0.0.1 (random port) in a thread with two endpoints:
/chat, a well-behaved token stream, and /broken, an upstream that sends 8 MiB and
never a blank line (the shape of the classic unbounded-SSE-buffer leak). The client
reads both with a 1 MiB limit per event and shows that the bound holds.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import httpx

from memscope.guard.sse import SSEBuffer, SSEOverflowError, iter_sse

LIMIT = 1024 * 1024  # max_event_bytes for the client


def chat_stream() -> Iterator[bytes]:
    for i, token in enumerate(["Memory ", "stays ", "bounded", "."]):
        payload = {"id": "chatcmpl-1", "choices": [{"delta": {"content": token}}]}
        yield f"id: {i}\r\ndata: {json.dumps(payload)}\r\n\r\n".encode()
    yield b": keep-alive\n\nevent: done\ndata: [DONE]\n\n"


def broken_stream() -> Iterator[bytes]:
    yield b"data: a normal event first\n\n"
    yield b"data: "
    for _ in range(8 * 1024 // 64):  # 8 MiB in 64 KiB writes, no line end at all
        yield b"x" * (64 * 1024)
    yield b"\n\ndata: the upstream recovered\n\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        stream = chat_stream() if self.path == "/chat" else broken_stream()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for part in stream:
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.flush()
                if self.path == "/chat":
                    time.sleep(0.05)  # a token at a time, like a model would
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the raise policy): nothing to clean up

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the example's output readable


def main() -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(timeout=10.0) as client:
            print(f"1. a well-behaved stream from {base}/chat")
            with client.stream("GET", base + "/chat") as response:
                for event in iter_sse(response.iter_bytes(), max_event_bytes=LIMIT):
                    print(f"   {event.event:<8} id={event.id:<2} {event.data}")

            print("\n2. an upstream that never sends a blank line, on_overflow='skip'")
            buf = SSEBuffer(max_event_bytes=LIMIT, on_overflow="skip", name="broken-upstream")
            peak = received = 0
            with client.stream("GET", base + "/broken") as response:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    for event in buf.feed(chunk):
                        print(f"   {event.event:<8} {event.data[:60]}")
                    peak = max(peak, len(buf))
            print(
                f"   received {received / 2**20:.1f} MiB; peak pending {peak / 2**20:.2f} MiB "
                f"(limit {LIMIT / 2**20:.0f} MiB); overflows_total={buf.overflows_total}"
            )

            print("\n3. the same upstream, on_overflow='raise' (the default)")
            with client.stream("GET", base + "/broken") as response:
                try:
                    for event in iter_sse(response.iter_bytes(), max_event_bytes=LIMIT):
                        print(f"   {event.event:<8} {event.data[:60]}")
                except SSEOverflowError as exc:
                    print(f"   SSEOverflowError: {exc}")
                    print("   (the client can close the connection, or keep feeding: the")
                    print("   buffer already skips to the next blank line)")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
