"""A Starlette service under uvicorn, driven over HTTP on loopback, with two real leaks.

``python service.py`` serves the app in a thread (port 0), sends requests with httpx,
snapshots before and after from the main thread and prints ``str(compare(a, b))``. The
leaks: a per-user rendered-profile cache on the service object, and a logging
FileHandler added on the "audit" logger by every request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import tempfile
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import memscope

LOGS = tempfile.mkdtemp(prefix="memscope-service-")
REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 600
audit = logging.getLogger("audit")
audit.propagate = False


class ProfileService:
    """Renders profiles; keeps every page it ever rendered (the first leak)."""

    def __init__(self) -> None:
        self._rendered: dict[str, bytes] = {}

    def render(self, user: str) -> bytes:
        page = self._rendered.get(user)
        if page is None:
            page = self._rendered[user] = f"<h1>{user}</h1>".encode() * 200
        return page


service = ProfileService()


async def profile(request: Request) -> Response:
    user = request.path_params["user"]
    # the second leak: an audit handler (and its open file) per request, never removed
    audit.addHandler(logging.FileHandler(os.path.join(LOGS, f"{user}.log")))
    return Response(service.render(user), media_type="text/html")


app = Starlette(routes=[Route("/profile/{user}", profile)])


def serve() -> tuple[uvicorn.Server, threading.Thread, int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


def main() -> int:
    server, thread, port = serve()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for i in range(20):  # warm up: the first requests import and allocate
            http.get(f"/profile/warm-{i}").raise_for_status()
        memscope.snapshot(deep=True)
        gc.collect()
        a = memscope.snapshot(label="before", deep=True)
        for i in range(REQUESTS):
            http.get(f"/profile/user-{i}").raise_for_status()
        gc.collect()
        b = memscope.snapshot(label="after", deep=True)
    server.should_exit = True
    thread.join(30)
    print(memscope.compare(a, b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
