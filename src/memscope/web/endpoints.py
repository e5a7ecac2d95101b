"""The debug app's JSON endpoints: each reads memscope's own pieces, off the event loop."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .._base import proc
from .._base.tracking import clear_caches
from .._diff import compare
from .._snapshot import run_collector, snapshot
from .params import Param, parse_query
from .scrub import scrub
from .state import WORKERS, DebugState, WorkersBusy
from .views import alert_rows, cache_row, history_points, json_response, trend_rows

if TYPE_CHECKING:
    from .._base.collector import Collector

log = logging.getLogger("memscope.web")

TRACKED_NAMES_SHOWN = 50
OWN_LABELS = frozenset({"debug_app cheap", "debug_app deep"})  # labels this app gives


def _as_collector(collector: object) -> Collector:
    # the built-in collectors satisfy the protocol; their ``cost`` is a plain str to mypy
    return cast("Collector", collector)


def _section(snap: Any, name: str) -> dict[str, Any] | None:
    section = snap.get(name)
    return None if section is None else section.to_dict()


class Endpoints:
    """The request handlers of one debug app (bound methods, so each app has its own state)."""

    def __init__(self, state: DebugState) -> None:
        self.state = state

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def params(request: Request, spec: Mapping[str, Param]) -> dict[str, Any]:
        """The request's checked query parameters (ParamError becomes a 422)."""
        return parse_query(request.scope.get("query_string", b""), spec)

    async def off_loop(
        self, fn: Callable[[], Any], if_not_run: Callable[[], object] | None = None
    ) -> Any:
        """Run ``fn`` in a worker thread, so the host's event loop keeps serving.

        At most WORKERS at once for this app (WorkersBusy, a 429, beyond): the thread pool
        is the host's too. ``if_not_run`` is called when ``fn`` never started (the client
        went away while it waited for a thread).
        """
        slots = self.state.workers
        if not slots.acquire(blocking=False):
            if if_not_run is not None:
                if_not_run()
            raise WorkersBusy(WORKERS)
        started = False

        def job() -> Any:
            nonlocal started
            started = True
            try:
                return fn()
            finally:
                slots.release()

        try:
            return await run_in_threadpool(job)
        finally:
            # once started, the await lasts until the thread is done, so this cannot race
            if not started:
                slots.release()
                if if_not_run is not None:
                    if_not_run()

    async def heavy(self, name: str, fn: Callable[[], Response]) -> Response:
        """Run a heap scan through the gate: one at a time, rate-limited, else a 429."""
        gate = self.state.gate
        verdict = gate.enter(name)
        if not verdict.admitted:
            return json_response(
                {
                    "error": f"busy: {verdict.reason}; retry later",
                    "retry_after_seconds": round(verdict.retry_after, 3),
                },
                429,
                {"Retry-After": verdict.retry_after_header},
            )

        def job() -> Response:
            # released in the worker thread, so a client that goes away mid-scan cannot
            # open the gate while the scan still runs
            try:
                return fn()
            finally:
                gate.release()

        result: Response = await self.off_loop(job, if_not_run=gate.release)
        return result

    def clean(self, data: Any) -> Any:
        """``data`` without object contents unless the app exposes reprs."""
        return data if self.state.expose_reprs else scrub(data, keep=OWN_LABELS)

    # -- GET -----------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        """Process, gc, tracked summary, alerts, the monitor and the stored snapshots."""
        self.params(request, {})
        state = self.state
        state.ensure_monitor()
        snap = await self.off_loop(
            lambda: snapshot(
                label="debug_app status",
                collectors=["process", "gc", "tracked", "tasks", "threads"],
            )
        )
        tracked = _section(snap, "tracked") or {}
        tasks = _section(snap, "tasks") or {}
        threads = _section(snap, "threads") or {}
        monitor = state.monitor
        return json_response(
            {
                "pid": snap.pid,
                "python": snap.python,
                "timestamp": snap.timestamp,
                "process": _section(snap, "process"),
                "gc": {k: v for k, v in (_section(snap, "gc") or {}).items() if k != "generations"},
                "tracked": {
                    "count": tracked.get("count"),
                    "names": [r.get("name") for r in tracked.get("objects", [])][
                        :TRACKED_NAMES_SHOWN
                    ],
                },
                "tasks": {k: tasks.get(k) for k in ("count", "pending", "done_unawaited")},
                "threads": {"count": threads.get("count")},
                "alerts": alert_rows(monitor),
                "monitor": {
                    "label": monitor.label,
                    "interval_seconds": monitor.interval,
                    "kept": len(monitor),
                    "history": monitor.history,
                    "running": monitor.running,
                    "own": state.own_monitor,
                },
                "snapshots": state.store.listing(),
                "scan": {"running": state.gate.running, "interval_seconds": state.gate.interval},
                "expose_reprs": state.expose_reprs,
                "uptime_seconds": time.time() - state.started,
                "errors": dict(snap.errors),
            }
        )

    async def top(self, request: Request) -> Response:
        """tracemalloc's top allocation sites (``limit``), when tracing is on."""
        args = self.params(request, {"limit": Param("int", 25, 1, 1000)})
        import tracemalloc

        if not tracemalloc.is_tracing():
            return json_response(
                {
                    "tracing": False,
                    "top": [],
                    "note": "tracemalloc is not tracing: call memscope.start_tracing() in the "
                    "service to see allocation sites (it costs memory and CPU while on)",
                }
            )
        from ..collectors.tracing import TracemallocCollector

        section, error = await self.off_loop(
            lambda: run_collector(_as_collector(TracemallocCollector(top=args["limit"])))
        )
        return json_response(section.to_dict() if section is not None else {"error": error})

    async def objects(self, request: Request) -> Response:
        """The census: live objects by type and by module (``limit`` rows each). Heavy."""
        args = self.params(request, {"limit": Param("int", 30, 1, 500)})
        from ..collectors.census import CensusCollector

        def scan() -> Response:
            section, error = run_collector(_as_collector(CensusCollector(top=args["limit"])))
            return json_response(section.to_dict() if section is not None else {"error": error})

        return await self.heavy("objects", scan)

    async def containers(self, request: Request) -> Response:
        """The longest containers and who holds them (``limit`` rows). Heavy."""
        args = self.params(request, {"limit": Param("int", 20, 1, 200)})
        from ..collectors.containers import ContainersCollector

        def scan() -> Response:
            section, error = run_collector(_as_collector(ContainersCollector(top=args["limit"])))
            body = section.to_dict() if section is not None else {"error": error}
            return json_response(self.clean(body))

        return await self.heavy("containers", scan)

    async def caches(self, request: Request) -> Response:
        """Every tracked object (guard objects included) with its size and statistics."""
        self.params(request, {})
        snap = await self.off_loop(
            lambda: snapshot(label="debug_app caches", collectors=["tracked"])
        )
        tracked = _section(snap, "tracked") or {}
        rows = [cache_row(r) for r in tracked.get("objects", []) if isinstance(r, Mapping)]
        return json_response(
            {
                "count": len(rows),
                "dropped_total": tracked.get("dropped_total"),
                "caches": rows,
                "errors": dict(snap.errors),
            }
        )

    async def leaks(self, request: Request) -> Response:
        """find_leaks(): cycles, uncollectable garbage, steady growth (``limit``). Heavy."""
        args = self.params(
            request, {"limit": Param("int", 20, 1, 100), "rounds": Param("int", 3, 1, 10)}
        )
        import memscope

        try:
            find_leaks = memscope.find_leaks  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, ImportError):
            find_leaks = None
        if find_leaks is None:
            return json_response(
                {"error": "find_leaks is not available in this version of memscope"}, 501
            )

        def scan() -> Response:
            report = find_leaks(rounds=args["rounds"], limit=args["limit"])
            return json_response(self.clean({**report.to_dict(), "text": str(report)}))

        return await self.heavy("leaks", scan)

    async def tasks(self, request: Request) -> Response:
        """asyncio tasks of every loop, by state and coroutine."""
        self.params(request, {})
        snap = await self.off_loop(lambda: snapshot(label="debug_app tasks", collectors=["tasks"]))
        return json_response(_section(snap, "tasks") or {"error": snap.errors.get("tasks")})

    async def history(self, request: Request) -> Response:
        """The monitor's kept samples (RSS and friends over time), its trends and alerts."""
        args = self.params(request, {"seconds": Param("float", None, 1.0, 1e8)})
        state = self.state
        state.ensure_monitor()
        monitor = state.monitor

        def read() -> dict[str, Any]:
            snaps = monitor.snapshots()
            if args["seconds"] is not None and snaps:
                since = snaps[-1].timestamp - args["seconds"]
                snaps = [s for s in snaps if s.timestamp >= since]
            return {
                "interval_seconds": monitor.interval,
                "running": monitor.running,
                "points": history_points(snaps),
                "trends": trend_rows(monitor.trends(args["seconds"], top=20)),
                "alerts": alert_rows(monitor),
            }

        return json_response(await self.off_loop(read))

    async def snapshots(self, request: Request) -> Response:
        """The stored snapshots: id, label, time, whether deep."""
        self.params(request, {})
        return json_response(
            {"maxsize": self.state.store.maxsize, "snapshots": self.state.store.listing()}
        )

    async def metrics(self, request: Request) -> Response:
        """memscope's metrics in the Prometheus text format."""
        self.params(request, {})
        try:
            from ..integrations.prometheus import render_metrics  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            return json_response(
                {
                    "error": f"Prometheus metrics are unavailable: {exc} "
                    "(pip install 'memscope[prometheus]')"
                },
                501,
            )
        body, content_type = await self.off_loop(render_metrics)
        return Response(body, 200, headers={"Content-Type": content_type})

    # -- POST ----------------------------------------------------------------------------

    async def collect(self, request: Request) -> Response:
        """gc.collect(generation) with the objects collected and RSS before and after."""
        args = self.params(request, {"generation": Param("int", 2, 0, 2)})

        def run() -> dict[str, Any]:
            before = proc.rss_bytes()
            started = time.perf_counter()
            collected = gc.collect(args["generation"])
            seconds = time.perf_counter() - started
            after = proc.rss_bytes()
            return {
                "generation": args["generation"],
                "collected": collected,
                "seconds": seconds,
                "rss_before_bytes": before,
                "rss_after_bytes": after,
                "garbage": len(gc.garbage),
            }

        return json_response(await self.off_loop(run))

    async def take_snapshot(self, request: Request) -> Response:
        """Take a snapshot (``deep=true``: with the heap scans, heavy) and store it."""
        args = self.params(request, {"deep": Param("bool", False)})
        deep = args["deep"]
        store = self.state.store

        def take() -> Response:
            snap = snapshot(label=f"debug_app {'deep' if deep else 'cheap'}", deep=deep)
            ident, dropped = store.add(snap)
            process: Mapping[str, Any] = snap.get("process") or {}
            return json_response(
                {
                    "id": ident,
                    "label": snap.label,
                    "timestamp": snap.timestamp,
                    "deep": deep,
                    "rss_bytes": process.get("rss_bytes"),
                    "sections": snap.collectors,
                    "errors": dict(snap.errors),
                    "dropped": dropped,
                    "kept": len(store),
                    "maxsize": store.maxsize,
                }
            )

        if deep:
            return await self.heavy("deep snapshot", take)
        made: Response = await self.off_loop(take)
        return made

    async def compare(self, request: Request) -> Response:
        """compare() of stored snapshots ``a`` and ``b``: the diff and its summary."""
        args = self.params(
            request,
            {
                "a": Param("id", required=True),
                "b": Param("id", required=True),
                "top": Param("int", 15, 1, 100),
            },
        )
        store = self.state.store
        found = {}
        for key in ("a", "b"):
            snap = store.get(args[key])
            if snap is None:
                kept = [row["id"] for row in store.listing()]
                return json_response(
                    {
                        "error": f"snapshot {args[key]} (parameter {key}) is not in the store; "
                        f"kept ids: {kept or 'none'}",
                        "parameter": key,
                    },
                    404,
                )
            found[key] = snap

        def run() -> dict[str, Any]:
            diff = compare(found["a"], found["b"])
            return {
                "a": args["a"],
                "b": args["b"],
                "text": diff.summary(top=args["top"]),
                "diff": diff.to_dict(),
            }

        return json_response(self.clean(await self.off_loop(run)))

    async def clear(self, request: Request) -> Response:
        """clear_caches(): empties every tracked object registered as clearable."""
        self.params(request, {})
        cleared = await self.off_loop(clear_caches)
        return json_response({"cleared": cleared, "entries_total": sum(cleared.values())})

    async def release(self, request: Request) -> Response:
        """release_memory(): gc, expired cache entries, malloc_trim; its report."""
        self.params(request, {})
        from ..guard.release import release_memory

        report = await self.off_loop(release_memory)
        return json_response({**report.to_dict(), "text": str(report)})


__all__ = ["Endpoints"]
