"""Fixtures of the debug app tests: a real uvicorn on loopback, and a small service to mount."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Server:
    """uvicorn serving ``app`` on 127.0.0.1, on a port the OS picks, in a daemon thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30  # generous: two shared cores
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:43121."""
        sock = self.server.servers[0].sockets[0]
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.url.rsplit(":", 1)[1])

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def demo_service(mount: Callable[[Any], Any] | None = None, **app_options: Any) -> Any:
    """A FastAPI service with a busy BoundedCache and an SSEBuffer, the debug app mounted."""
    from fastapi import FastAPI

    import memscope
    from memscope.guard import BoundedCache, SSEBuffer
    from memscope.web import debug_app

    service = FastAPI()
    models: BoundedCache[str, bytes] = BoundedCache(maxsize=32, name="models")
    for i in range(100):  # 68 evictions
        models[f"profile-{i}"] = bytes(1000)
    for i in range(90, 100):
        models.get(f"profile-{i}")  # 10 hits
    for i in range(5):
        models.get(f"gone-{i}")  # 5 misses
    buffer = SSEBuffer(max_event_bytes=64, on_overflow="skip", name="upstream_sse")
    buffer.feed(b"data: " + b"x" * 200 + b"\n\ndata: ok\n\n")
    service.state.keep = (models, buffer)

    @service.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    options: dict[str, Any] = {"token": TOKEN, **app_options}
    if "monitor" not in options:
        options["monitor"] = memscope.Monitor(
            interval=0.2, history=200, label="test", thresholds={"rss_bytes": "1MiB"}
        ).start()
    service.state.monitor = options["monitor"]
    service.mount("/_debug/memory", debug_app(**options))
    return service


@pytest.fixture
def service() -> Iterator[tuple[Server, Any]]:
    """The demo service under uvicorn; yields (server, the FastAPI app)."""
    app = demo_service(scan_interval=0.0)
    try:
        with Server(app) as server:
            yield server, app
    finally:
        app.state.monitor.stop()


@pytest.fixture
def client(service: tuple[Server, Any]) -> Iterator[httpx.Client]:
    """An httpx client for the mounted debug app, token included."""
    server, _ = service
    with httpx.Client(base_url=server.url + "/_debug/memory/", headers=AUTH, timeout=60) as http:
        yield http


@pytest.fixture
def serve() -> Callable[[Any], Server]:
    """A factory: ``with serve(app) as server:`` runs any ASGI app under uvicorn."""
    return Server
