"""A tiny ASGI app for the Prometheus tests: /metrics (memscope's), /hit?key= (a cache), /pid.

Under gunicorn with PROMETHEUS_MULTIPROC_DIR set, each worker starts its publisher at
lifespan startup, after the fork; a single process serves a MemscopeCollector's scrape.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from memscope.guard import BoundedCache
from memscope.integrations.prometheus import multiprocess_dir, render_metrics, start_multiprocess

models: BoundedCache[str, bytes] = BoundedCache(maxsize=4, name="models")


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if multiprocess_dir() is not None:
                start_multiprocess(interval=float(os.environ.get("MEMSCOPE_PUBLISH_INTERVAL", "1")))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    status, content_type, body = 200, "text/plain", b""
    if scope["path"] == "/metrics":
        body, content_type = render_metrics()
    elif scope["path"] == "/hit":
        key = parse_qs(scope.get("query_string", b"").decode()).get("key", ["k"])[0]
        models.get_or_set(key, lambda: b"model")
        body = str(os.getpid()).encode()
    elif scope["path"] == "/pid":
        body = str(os.getpid()).encode()
    else:
        status, body = 404, b"not found"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
