"""The debug app itself: routes, the security gatekeeper in front of them, and the errors.

This module (and endpoints) import Starlette; ``memscope.web`` loads them only when an app
is built, so the ``web`` extra is needed only then.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .._base.validate import check_bool, check_int, check_number
from .endpoints import Endpoints
from .params import ParamError
from .security import check_token, is_loopback, token_ok
from .state import WorkersBusy, make_state
from .views import json_response, to_json

if TYPE_CHECKING:
    from ..monitor import Monitor

__all__ = ["STATIC", "build_app"]

log = logging.getLogger("memscope.web")

STATIC = Path(__file__).with_name("static")

# every response: no caching of heap data, no framing, no sniffing, no referrer leaking
# the mount path, and a page that may load only its own scripts and styles
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    ),
]


def route_path(scope: Scope) -> str:
    """The request path inside the app (the mount prefix taken off)."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return str(path) or "/"


def is_public(path: str) -> bool:
    """The dashboard shell and its static files hold no data: they load without the token."""
    return path in ("/", "") or path == "/index.html" or path.startswith("/static/")


class Gatekeeper:
    """ASGI middleware: loopback rule, bearer token, and the security headers on every reply."""

    def __init__(self, app: ASGIApp, token: bytes | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # websockets: nothing here speaks them
            await send({"type": "websocket.close", "code": 1008})
            return
        if self.loopback_only and not is_loopback(scope.get("client")):
            await self._refuse(send, 403, "this debug app serves only clients on this host")
            return
        if (
            self.token is not None
            and not is_public(route_path(scope))
            and not token_ok(self.token, scope.get("headers", []))
        ):
            await self._refuse(
                send,
                401,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                [(b"www-authenticate", b'Bearer realm="memscope"')],
            )
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(
        send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = to_json({"error": message})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *SECURITY_HEADERS,
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _param_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ParamError)
    return json_response(exc.to_dict(), 422)


async def _workers_busy(request: Request, exc: Exception) -> Response:
    return json_response({"error": str(exc)}, 429, {"Retry-After": "1"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    headers = dict(exc.headers or {})
    return json_response({"error": str(exc.detail)}, status, headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # a bug of memscope's, never the input's: logged in full, answered in one line
    log.exception("memscope debug app: %s %s failed", request.method, request.url.path)
    return json_response(
        {"error": f"internal error in memscope's debug app: {type(exc).__name__}"}, 500
    )


def build_app(
    token: str | None,
    monitor: Monitor | None,
    expose_reprs: bool,
    loopback_only: bool,
    scan_interval: float,
    max_snapshots: int,
) -> Starlette:
    """The Starlette app behind :func:`memscope.web.debug_app` (arguments checked here)."""
    secret = check_token(token, loopback_only)
    check_bool("expose_reprs", expose_reprs)
    check_number("scan_interval", scan_interval, low=0.0, high=3600.0, unit="seconds")
    check_int("max_snapshots", max_snapshots, low=1, high=1000)

    state = make_state(monitor, expose_reprs, scan_interval, max_snapshots)
    ep = Endpoints(state)
    page = (STATIC / "index.html").read_bytes()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/index.html", index, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/status", ep.status, methods=["GET"]),
        Route("/top", ep.top, methods=["GET"]),
        Route("/objects", ep.objects, methods=["GET"]),
        Route("/containers", ep.containers, methods=["GET"]),
        Route("/caches", ep.caches, methods=["GET"]),
        Route("/leaks", ep.leaks, methods=["GET"]),
        Route("/tasks", ep.tasks, methods=["GET"]),
        Route("/history", ep.history, methods=["GET"]),
        Route("/snapshots", ep.snapshots, methods=["GET"]),
        Route("/metrics", ep.metrics, methods=["GET"]),
        Route("/gc", ep.collect, methods=["POST"]),
        Route("/snapshot", ep.take_snapshot, methods=["POST"]),
        Route("/compare", ep.compare, methods=["GET", "POST"]),
        Route("/clear_caches", ep.clear, methods=["POST"]),
        Route("/release", ep.release, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # run standalone, the app stops the monitor it started; mounted, a host's lifespan
        # does not reach it and the monitor's daemon thread ends with the process
        yield
        if state.own_monitor:
            state.monitor.stop()

    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        middleware=[Middleware(Gatekeeper, token=secret, loopback_only=loopback_only)],
        exception_handlers={
            ParamError: _param_error,
            WorkersBusy: _workers_busy,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.memscope = state
    return app
