"""The same SSE proxy written the naive way: the leaks app.py makes impossible. Don't deploy.

Run: SSE_PROXY_UPSTREAM=http://127.0.0.1:8001 python naive.py --port 8000

Same routes as app.py, the classic code behind them:

- ``buffer += chunk`` until ``"\\n\\n"``: a 50 MB event is held whole (and rescanned on
  every chunk), an upstream that never sends a blank line grows the buffer until the
  stream ends, and CRLF line ends never match, so nothing is delivered at all;
- a plain dict of models, one per profile ever seen;
- ``asyncio.create_task(audit(...))`` kept in a set "so it is not garbage-collected",
  and never removed;
- no MemoryGuard, no limit on concurrent streams.

``GET /healthz`` reports the sizes of the dict and the task set; memscope's debug app
is mounted as in app.py, and sees them (they are tracked by name).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
from app import Model, Settings, sse  # the shared pieces (run from this directory)
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

import memscope
from memscope.web import debug_app

MODELS: dict[str, Model] = {}  # every profile ever seen
AUDITS: set[asyncio.Task[None]] = set()  # every audit ever started


def create_app(settings: Settings | None = None, token: str | None = None) -> FastAPI:
    """The naive app (same environment as app.create_app)."""
    settings = Settings.from_env() if settings is None else settings
    token = os.environ["MEMSCOPE_TOKEN"] if token is None else token
    module = sys.modules[__name__]
    memscope.track(MODELS, name="naive.models", owner=module)
    memscope.track(AUDITS, name="naive.audits", owner=module)
    client = httpx.AsyncClient(timeout=None)  # no read timeout: a stalled upstream is held

    async def load_model(profile: str) -> Model:
        if profile not in MODELS:
            await asyncio.sleep(0.005)
            seed = profile.encode()[:64] or b"-"
            weights = (seed * (settings.model_bytes // len(seed) + 1))[: settings.model_bytes]
            MODELS[profile] = Model(profile, len(MODELS) + 1, weights)
        return MODELS[profile]

    async def audit(profile: str, summary: dict[str, Any]) -> None:
        with suppress(httpx.HTTPError):
            await client.post(f"{settings.upstream}/audit", json={"profile": profile, **summary})

    async def relay(profile: str, mode: str, model: Model) -> AsyncIterator[bytes]:
        buffer = ""
        events = 0
        async with client.stream(
            "GET", f"{settings.upstream}/stream", params={"mode": mode, "profile": profile}
        ) as upstream:
            async for chunk in upstream.aiter_raw():
                buffer += chunk.decode()
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    data = "\n".join(
                        line[6:] for line in block.split("\n") if line.startswith("data: ")
                    )
                    if data:
                        events += 1
                        payload = {"profile": profile, "model": model.version, "data": data}
                        yield sse("message", payload)
        summary = {"reason": "complete", "events": events, "overflows": 0, "mode": mode}
        AUDITS.add(asyncio.create_task(audit(profile, summary)))  # the reference that stays
        yield sse("end", summary)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client:
            yield

    app = FastAPI(title="sse_proxy (naive)", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "models": len(MODELS), "audits": len(AUDITS)}

    @app.get("/chat/{profile}")
    async def chat(profile: str, mode: str = "normal") -> Response:
        model = await load_model(profile[:100])
        return StreamingResponse(relay(profile[:100], mode, model), media_type="text/event-stream")

    app.mount("/_debug/memory", debug_app(token=token))
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the naive proxy with uvicorn on ``--host``/``--port`` (0: any free port)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    app = create_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)  # clients that connect before uvicorn is up wait in the backlog
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
