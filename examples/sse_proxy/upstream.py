"""A fake SSE upstream that misbehaves on request, for the sse_proxy example.

Run: python upstream.py --port 8001      (--port 0 picks a free port; the first line
printed is ``listening on http://127.0.0.1:PORT``)

``GET /stream?mode=MODE`` streams Server-Sent Events the way real upstreams break:

- ``normal``: a few token events (LF line ends), then ``event: done``.
- ``crlf``: the same events with CRLF line ends (many Java and .NET servers).
- ``noblank``: ``data:`` lines that never end in a blank line (``noblank_bytes`` of them).
- ``huge``: one event, then one event of ``huge_bytes`` (50 MB by default) in 64 KiB
  writes, then a normal event and ``done``.
- ``stall``: one event, then nothing at all until the client goes away.

``POST /audit`` stands in for a slow analytics sink (the proxy's background work):
it answers after ``delay`` seconds (0.05 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODES = ("normal", "crlf", "noblank", "huge", "stall")
WRITE = 64 * 1024  # bytes per write of the big streams
TOKENS = ("Memory ", "stays ", "bounded ", "under ", "a ", "misbehaving ", "upstream", ".")


def token_events(eol: str, profile: str, delay: float) -> list[tuple[bytes, float]]:
    """The well-behaved part of every stream: one event a token, then ``done``."""
    parts = []
    for i, token in enumerate(TOKENS):
        payload = json.dumps({"profile": profile, "i": i, "token": token})
        parts.append((f"id: {i}{eol}data: {payload}{eol}{eol}".encode(), delay))
    parts.append((f": keep-alive{eol}{eol}event: done{eol}data: [DONE]{eol}{eol}".encode(), 0.0))
    return parts


async def stream(
    mode: str, profile: str, delay: float, huge_bytes: int, noblank_bytes: int
) -> AsyncIterator[bytes]:
    """The bytes of one response in ``mode``."""
    if mode in ("normal", "crlf"):
        for part, pause in token_events("\r\n" if mode == "crlf" else "\n", profile, delay):
            yield part
            await asyncio.sleep(pause)
    elif mode == "noblank":
        line = b"data: " + b"n" * (1024 - 7) + b"\n"  # 1 KiB lines, and never an empty one
        block = line * (WRITE // len(line))
        for _ in range(max(1, noblank_bytes // len(block))):
            yield block
            await asyncio.sleep(0)
    elif mode == "huge":
        yield b'data: {"note": "a normal event before the huge one"}\n\n'
        yield b"event: tool_call\ndata: "
        block = b"h" * WRITE
        for _ in range(max(1, huge_bytes // WRITE)):
            yield block
            await asyncio.sleep(0)  # let other streams run, as a real server would
        yield b'\n\ndata: {"note": "the upstream recovered"}\n\nevent: done\ndata: [DONE]\n\n'
    else:  # stall: one event, then silence with the connection open
        yield b'data: {"note": "about to stall"}\n\n'
        await asyncio.sleep(3600)


def _int(request: Request, name: str, default: int) -> int:
    try:
        return max(0, int(request.query_params.get(name, default)))
    except ValueError:
        return default


async def stream_endpoint(request: Request) -> Response:
    """GET /stream?mode=...&profile=...: an SSE stream that misbehaves as asked."""
    mode = request.query_params.get("mode", "normal")
    if mode not in MODES:
        return JSONResponse({"error": f"mode must be one of {', '.join(MODES)}"}, 400)
    body = stream(
        mode,
        request.query_params.get("profile", "anonymous")[:100],
        _int(request, "delay_ms", 5) / 1000,
        _int(request, "huge_bytes", 50_000_000),
        _int(request, "noblank_bytes", 4 << 20),
    )
    return StreamingResponse(body, media_type="text/event-stream")


async def audit_endpoint(request: Request) -> Response:
    """POST /audit: a slow sink for the proxy's background work."""
    await request.body()
    await asyncio.sleep(_int(request, "delay_ms", 50) / 1000)
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/stream", stream_endpoint, methods=["GET"]),
        Route("/audit", audit_endpoint, methods=["POST"]),
    ]
)


def main(argv: list[str] | None = None) -> int:
    """Serve the fake upstream on ``--host``/``--port`` (0: any free port)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)  # clients that connect before uvicorn is up wait in the backlog
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
