"""An SSE proxy service with the classic memory leaks made impossible by memscope.guard.

Run (two shells, from this directory; see README.md):

    python upstream.py --port 8001
    MEMSCOPE_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())') \\
        SSE_PROXY_UPSTREAM=http://127.0.0.1:8001 python app.py --port 8000

or ``uvicorn --factory app:create_app`` with the same environment.

``GET /chat/{profile}`` streams the upstream's events to the client, each tagged with
the profile's model. The naive version of this service (``buffer += chunk`` until
``"\\n\\n"``, a dict of models keyed by profile, ``asyncio.create_task(audit(...))`` and
nothing watching RSS) grows until it is killed; here:

- the upstream is decoded by an ``SSEBuffer`` with ``max_event_bytes``, and at most
  ``max_streams`` streams run at once (503 beyond), so SSE buffering is bounded by
  ``max_streams * max_event_bytes`` whatever the upstream sends;
- models live in a ``BoundedCache`` (``maxsize``, ``ttl``, ``max_bytes``, single flight);
- the audit call after each stream runs in a ``TaskTracker`` with a ``limit``: when the
  sink is slow, audits are dropped and counted instead of piling up;
- a ``MemoryGuard`` releases memory, then drops the models, past a soft limit, and sheds
  new streams past the hard limit until memory is back under it;
- ``/_debug/memory`` is memscope's debug app (bearer token) and ``/metrics`` serves
  memscope's Prometheus metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool

import memscope
from memscope.guard import (
    BoundedCache,
    MemoryGuard,
    SSEBuffer,
    TaskLimitError,
    TaskTracker,
    release_memory_async,
)
from memscope.web import debug_app

log = logging.getLogger("sse_proxy")

MODES = ("normal", "crlf", "noblank", "huge", "stall")  # what the fake upstream can do


@dataclass(frozen=True)
class Settings:
    """The service's bounds and endpoints; ``from_env()`` reads ``SSE_PROXY_<FIELD>``."""

    upstream: str = "http://127.0.0.1:8001"
    max_event_bytes: int = 1 << 20  # one SSE event from the upstream, at most
    max_streams: int = 32  # streams proxied at once; more get 503
    model_cache_size: int = 32  # models kept (one per profile)
    model_ttl: float = 300.0  # seconds a model is kept after it was loaded
    model_bytes: int = 256 << 10  # what one model weighs
    task_limit: int = 16  # background audits in flight; more are dropped
    read_timeout: float = 2.0  # an upstream silent this long has stalled
    stream_seconds: float = 60.0  # the longest a proxied stream may run
    soft_limit: str = "75%"  # MemoryGuard: release memory and clear caches above this
    hard_limit: str = "90%"  # MemoryGuard: refuse new streams above this
    guard_interval: float = 1.0  # seconds between MemoryGuard checks

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``SSE_PROXY_UPSTREAM``, ``SSE_PROXY_MAX_EVENT_BYTES``, ..."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"SSE_PROXY_{f.name.upper()}")
            if raw is not None:
                kind = type(getattr(cls, f.name))
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(
                        f"SSE_PROXY_{f.name.upper()} must be {kind.__name__}, got {raw!r}"
                    ) from None
        return cls(**values)

    @property
    def max_buffered_bytes(self) -> int:
        """The most SSE bytes the proxy can hold pending at once."""
        return self.max_streams * self.max_event_bytes


@dataclass(frozen=True)
class Model:
    """A per-profile model: stands in for weights loaded from disk or a model store."""

    profile: str
    version: int
    weights: bytes


class ProxyStats:
    """Counters of the proxy, tracked by memscope (``len`` is the streams running now).

    SSE buffers live as long as their stream; this keeps the totals of the finished
    ones, so overflows stay counted after the stream that saw them has gone.
    """

    def __init__(self) -> None:
        self.live: set[SSEBuffer] = set()  # at most max_streams
        self.streams_total = 0
        self.refused_total = 0
        self.stalled_total = 0
        self.upstream_errors_total = 0
        self.events_total = 0
        self.audits_dropped_total = 0
        self.audit_errors_total = 0
        self.models_loaded_total = 0
        self._finished_overflows = 0
        self._finished_bytes = 0

    def __len__(self) -> int:
        return len(self.live)

    def finish(self, buf: SSEBuffer) -> None:
        """A stream ended: fold its buffer's counters into the totals."""
        self.live.discard(buf)
        self._finished_overflows += buf.overflows_total
        self._finished_bytes += buf.bytes_total

    def overflows_total(self) -> int:
        """SSE events dropped for passing max_event_bytes, finished and live streams."""
        return self._finished_overflows + sum(b.overflows_total for b in list(self.live))

    def memscope_stats(self) -> dict[str, Any]:
        """What memscope's ``tracked`` section (and so the debug app) shows."""
        live = list(self.live)
        return {
            "streams_live": len(live),
            "streams_total": self.streams_total,
            "refused_total": self.refused_total,
            "stalled_total": self.stalled_total,
            "upstream_errors_total": self.upstream_errors_total,
            "events_total": self.events_total,
            "overflows_total": self.overflows_total(),
            "upstream_bytes_total": self._finished_bytes + sum(b.bytes_total for b in live),
            "pending_bytes": sum(len(b) for b in live),
            "audits_dropped_total": self.audits_dropped_total,
            "audit_errors_total": self.audit_errors_total,
            "models_loaded_total": self.models_loaded_total,
            "size_bytes": sum(len(b) for b in live),
        }


class ProxyCollector:
    """The service's own counters for Prometheus, read from ProxyStats at each scrape.

    memscope exports every tracked object's size and length; what only this service
    knows (overflows of buffers that have ended, refusals, drops) it exports itself.
    """

    COUNTERS = {
        "streams": "Streams proxied.",
        "refused": "Streams refused with 503 (max_streams reached or memory over the hard limit).",
        "overflows": "Upstream SSE events dropped for passing max_event_bytes.",
        "stalled": "Streams cut because the upstream went silent for read_timeout.",
        "upstream_errors": "Streams ended by an upstream error.",
        "audits_dropped": "Audits dropped because task_limit audits were running.",
        "models_loaded": "Models loaded into the cache.",
    }

    def __init__(self, stats: ProxyStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """One counter per ProxyStats total, and the live streams and their pending bytes."""
        values = self.stats.memscope_stats()
        for name, help_text in self.COUNTERS.items():
            family = CounterMetricFamily(f"sse_proxy_{name}", help_text)
            family.add_metric([], values[f"{name}_total"])
            yield family
        yield GaugeMetricFamily(
            "sse_proxy_streams_live", "Streams running now.", values["streams_live"]
        )
        yield GaugeMetricFamily(
            "sse_proxy_pending_bytes",
            "Bytes the live streams' SSE buffers hold for unfinished events.",
            values["pending_bytes"],
        )


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One event in the SSE wire format (the data is JSON, so it holds no line end)."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Proxy:
    """The service: the bounded pieces and the handlers that use them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = memscope.track(ProxyStats(), name="sse_proxy.streams")
        self.models: BoundedCache[str, Model] = BoundedCache(
            maxsize=settings.model_cache_size,
            ttl=settings.model_ttl,
            max_bytes=settings.model_cache_size * (settings.model_bytes + 4096),
            getsizeof=lambda profile, model: len(model.weights) + 256,  # what a model weighs
            name="sse_proxy.models",
        )
        self.tracker = TaskTracker(limit=settings.task_limit, name="sse_proxy.audits")
        self.slots = asyncio.Semaphore(settings.max_streams)
        self.shedding = False  # set by the MemoryGuard past the hard limit
        self.versions = 0
        self.client: httpx.AsyncClient | None = None

    # -- the bounded pieces --------------------------------------------------------------

    async def load_model(self, profile: str) -> Model:
        """Load one profile's model (a short wait and ``model_bytes`` of weights)."""
        await asyncio.sleep(0.005)
        self.versions += 1
        self.stats.models_loaded_total += 1
        seed = profile.encode()[:64] or b"-"
        weights = (seed * (self.settings.model_bytes // len(seed) + 1))[: self.settings.model_bytes]
        return Model(profile, self.versions, weights)

    async def audit(self, profile: str, summary: dict[str, Any]) -> None:
        """Background work after a stream: report it to the (slow) analytics sink."""
        assert self.client is not None
        try:
            response = await self.client.post(
                f"{self.settings.upstream}/audit", json={"profile": profile, **summary}
            )
            response.raise_for_status()
        except httpx.HTTPError:
            self.stats.audit_errors_total += 1

    def spawn_audit(self, profile: str, summary: dict[str, Any]) -> None:
        """Start the audit in the tracker; when ``task_limit`` audits are running, drop it."""
        try:
            self.tracker.spawn(self.audit(profile, summary), name=f"audit-{profile[:40]}")
        except TaskLimitError:
            self.stats.audits_dropped_total += 1
        except RuntimeError:  # the tracker is closed: the service is shutting down
            self.stats.audits_dropped_total += 1

    # -- the stream ----------------------------------------------------------------------

    async def relay(self, profile: str, mode: str, model: Model) -> AsyncIterator[bytes]:
        """Read the upstream through a bounded SSEBuffer and re-emit its events."""
        settings = self.settings
        assert self.client is not None
        buf = SSEBuffer(
            max_event_bytes=settings.max_event_bytes, on_overflow="skip", name="sse_proxy.upstream"
        )
        self.stats.live.add(buf)
        self.stats.streams_total += 1
        deadline = time.monotonic() + settings.stream_seconds
        events = overflows = 0
        reason = "complete"
        try:
            async with self.client.stream(
                "GET", f"{settings.upstream}/stream", params={"mode": mode, "profile": profile}
            ) as upstream:
                if upstream.status_code != 200:
                    reason = f"upstream answered {upstream.status_code}"
                    self.stats.upstream_errors_total += 1
                else:
                    async for chunk in upstream.aiter_raw():
                        out = []
                        for event in buf.feed(chunk):
                            events += 1
                            out.append(
                                sse(
                                    event.event,
                                    {
                                        "profile": profile,
                                        "model": model.version,
                                        "data": event.data,
                                    },
                                )
                            )
                        if buf.overflows_total > overflows:
                            dropped = buf.overflows_total - overflows
                            overflows = buf.overflows_total
                            limit = settings.max_event_bytes
                            out.append(sse("overflow", {"dropped": dropped, "limit_bytes": limit}))
                        self.stats.events_total += len(out)
                        if out:
                            yield b"".join(out)
                        if time.monotonic() > deadline:
                            reason = "deadline"
                            break
                    buf.close()  # end of stream: an unfinished event is dropped, per the spec
        except httpx.TimeoutException:
            reason = "stalled"
            self.stats.stalled_total += 1
        except httpx.HTTPError as exc:
            reason = f"upstream error: {type(exc).__name__}"
            self.stats.upstream_errors_total += 1
        finally:
            self.stats.finish(buf)
        summary = {"reason": reason, "events": events, "overflows": overflows, "mode": mode}
        self.spawn_audit(profile, summary)
        yield sse("end", summary)

    async def chat(self, profile: str, mode: str) -> Response:
        """GET /chat/{profile}: the proxied stream, or 503 when the service is full."""
        if mode not in MODES:
            accepted = ", ".join(MODES)
            return JSONResponse({"error": f"mode must be one of {accepted}, got {mode!r}"}, 422)
        if self.shedding or self.slots.locked():
            self.stats.refused_total += 1
            why = "memory is over the hard limit" if self.shedding else "too many streams"
            return JSONResponse({"error": why}, 503, headers={"Retry-After": "1"})
        await self.slots.acquire()
        try:
            model = await self.models.aget_or_set(profile, lambda: self.load_model(profile))
        except BaseException:
            self.slots.release()
            raise

        async def body() -> AsyncIterator[bytes]:
            try:
                async for part in self.relay(profile, mode, model):
                    yield part
            finally:
                self.slots.release()

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- MemoryGuard action and callbacks ------------------------------------------------

    async def drop_models(self) -> None:
        """MemoryGuard action: empty the model cache, then give the freed memory to the OS.

        Emptying alone would leave the models' memory with malloc, so RSS would barely
        move; the trim after it is what brings RSS down.
        """
        dropped = len(self.models)
        self.models.clear()
        report = await release_memory_async()
        log.warning(
            "sse_proxy: memory pressure: dropped %d models; %s", dropped, report.explanation
        )

    def on_hard_limit(self, reading: object) -> None:
        """Past the hard limit: refuse new streams until memory is back under it."""
        self.shedding = True
        log.warning("memory over the hard limit (%s): refusing new streams", reading)

    def on_recovered(self, reading: object) -> None:
        """Back under the hard limit: take streams again."""
        self.shedding = False
        log.warning("memory back under the hard limit (%s)", reading)


def create_app(settings: Settings | None = None, token: str | None = None) -> FastAPI:
    """The FastAPI app (``uvicorn --factory app:create_app`` reads the environment)."""
    settings = Settings.from_env() if settings is None else settings
    token = os.environ["MEMSCOPE_TOKEN"] if token is None else token
    proxy = Proxy(settings)
    guard = MemoryGuard(
        soft_limit=settings.soft_limit,
        hard_limit=settings.hard_limit,
        interval=settings.guard_interval,
        # give back what is free first; if still over, drop the models and give that back
        actions=["release_memory", proxy.drop_models],
        on_hard_limit=proxy.on_hard_limit,
        on_recovered=proxy.on_recovered,
        name="sse_proxy",
    )
    monitor = memscope.Monitor(interval=2.0, history=300, label="sse_proxy")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=settings.max_streams + settings.task_limit + 4)
        timeout = httpx.Timeout(5.0, read=settings.read_timeout)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            proxy.client = client
            monitor.start()
            try:
                async with guard:
                    yield
            finally:
                await proxy.tracker.close(timeout=5.0)
                monitor.stop()

    app = FastAPI(title="sse_proxy", lifespan=lifespan)
    app.state.proxy = proxy

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "streams": len(proxy.stats), "shedding": proxy.shedding}

    @app.get("/chat/{profile}")
    async def chat(profile: str, mode: str = "normal") -> Response:
        return await proxy.chat(profile[:100], mode[:20])

    own_metrics = CollectorRegistry(auto_describe=True)
    own_metrics.register(ProxyCollector(proxy.stats))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        try:
            from memscope.integrations.prometheus import render_metrics
        except ImportError as exc:
            return PlainTextResponse(f"memscope's Prometheus integration is missing: {exc}", 503)
        body, content_type = await run_in_threadpool(render_metrics)
        # memscope's families, then the service's own (both in the text format)
        return Response(body + generate_latest(own_metrics), headers={"Content-Type": content_type})

    app.mount("/_debug/memory", debug_app(token=token, monitor=monitor))
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the proxy with uvicorn on ``--host``/``--port`` (0: any free port)."""
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
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
