"""memscope.web: an ASGI debug app with a live dashboard, to mount in a FastAPI or Starlette
service (the ``web`` extra: Starlette, imported only when an app is built).

    app.mount("/_debug/memory", debug_app(token=os.environ["MEMSCOPE_TOKEN"]))

See docs/web.md for the endpoints, the dashboard and the security rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..monitor import Monitor

__all__ = ["debug_app"]


def debug_app(
    token: str | None = None,
    monitor: Monitor | None = None,
    expose_reprs: bool = False,
    loopback_only: bool = False,
    *,
    scan_interval: float = 2.0,
    max_snapshots: int = 8,
) -> Starlette:
    """The debug app (a Starlette ASGI app): JSON endpoints and a dashboard at its root.

    ``token`` (at least 16 characters) is required as ``Authorization: Bearer <token>``
    unless ``loopback_only=True``, which refuses clients off this host with 403 (both may
    be given). ``monitor`` feeds the history and alerts; without one the app starts its
    own on the first request (every 5 s, 720 kept, alerting at 80% of the memory limit).
    Object contents stay out of the responses unless ``expose_reprs=True``. Heavy scans
    run one at a time, at most once every ``scan_interval`` seconds (429 otherwise);
    POST snapshot keeps the last ``max_snapshots``.
    """
    try:
        from .app import build_app
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith(("starlette", "anyio")):
            raise
        raise ModuleNotFoundError(
            f"memscope.web needs Starlette: pip install 'memscope[web]' ({exc})", name=exc.name
        ) from exc
    return build_app(token, monitor, expose_reprs, loopback_only, scan_interval, max_snapshots)
