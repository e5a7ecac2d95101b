"""examples/sse_proxy under load: a real uvicorn, a misbehaving upstream, concurrent clients.

The proxy (examples/sse_proxy/app.py) and its fake upstream (upstream.py) run as two
uvicorn subprocesses on loopback, each on a port the OS picked. For a bounded time,
concurrent httpx clients ask for streams the upstream breaks (no blank line ever, CRLF
line ends, 50 MB events, a stall) under hundreds of profile names, while a prober hits
/healthz and a sampler reads the debug app (GET status and caches, bearer token). Every
sample is checked against the bounds the proxy was started with, RSS growth after warm-up
against a budget made of those bounds, and /metrics is parsed with prometheus_client's
parser. Then the same checks are shown failing on naive.py (the service without the
guard), and the MemoryGuard is driven past a soft limit to show RSS coming back down.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sse_proxy"
MIB = 1 << 20

# the bounds the proxy runs with (SSE_PROXY_<NAME> in its environment)
BOUNDS: dict[str, Any] = {
    "max_event_bytes": 1 * MIB,
    "max_streams": 32,
    "model_cache_size": 16,
    "model_bytes": 512 << 10,
    "task_limit": 8,
    "read_timeout": 1.0,
    "soft_limit": "400MiB",
    "hard_limit": "600MiB",
    "guard_interval": 0.5,
}
PROFILES = 400  # profile names the clients use: 25x the model cache
HOT_PROFILES = 8  # the busy ones, 70% of the streams
WARMUP_SECONDS = 3.0
LOAD_SECONDS = 10.0
# RSS may grow this much from the end of warm-up to the end of the load: every SSE buffer
# full (max_streams x max_event_bytes, 32 MiB), a full model cache (its max_bytes, 8 MiB)
# and 8 MiB for the interpreter's own churn. What the naive service adds over the same
# load: a 50 MB buffer per huge stream in flight, a model per profile seen (400), a task
# per audit.
RSS_GROWTH_BUDGET = (
    BOUNDS["max_streams"] * BOUNDS["max_event_bytes"]
    + BOUNDS["model_cache_size"] * (BOUNDS["model_bytes"] + 4096)
    + 8 * MIB
)

# clients by the stream they ask for, again and again
WORKERS = {"normal": 6, "crlf": 3, "huge": 2, "noblank": 2, "stall": 2}
TOKENS = 8  # token events of a well-behaved stream (then "done", then the proxy's "end")


def _start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a server that prints ``listening on URL`` first; return it and its URL."""
    errors = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    errors.close()  # the child has its own copy
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60.0)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        raise AssertionError(f"{args[0]} did not start: {line!r}\n{log.read_text()}")
    return proc, line.split()[-1]


def _stop(proc: subprocess.Popen[str], *, graceful: bool = True) -> None:
    if graceful:
        proc.terminate()
    else:
        proc.kill()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


@dataclass
class Run:
    """What the load run saw: per-stream outcomes, probes, debug samples, final reads."""

    base: str
    headers: dict[str, str]
    streams: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    client_overflows: int = 0
    stall_seconds: list[float] = field(default_factory=list)
    health_seconds: list[float] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # GET caches, by row name
    statuses: list[dict[str, Any]] = field(default_factory=list)  # GET status
    rss_after_warmup: int = 0
    final_caches: dict[str, Any] = field(default_factory=dict)
    final_status: dict[str, Any] = field(default_factory=dict)
    bad_mode: tuple[int, str] = (0, "")
    metrics_status: int = 0
    metrics_text: str = ""


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The proxy's own SSE output (LF, JSON data), parsed."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def _check_stream(
    run: Run, mode: str, events: list[tuple[str, dict[str, Any]]], took: float
) -> None:
    """What a client of each mode must see; a wrong stream is a failure, counted."""
    kinds = [kind for kind, _ in events]
    end = events[-1][1] if events and kinds[-1] == "end" else None
    overflows = sum(data["dropped"] for kind, data in events if kind == "overflow")
    run.client_overflows += overflows
    problem = None
    if end is None:
        problem = "no end event"
    elif mode in ("normal", "crlf"):
        if kinds != ["message"] * TOKENS + ["done", "end"] or end["reason"] != "complete":
            problem = f"tokens lost: {kinds} {end}"
    elif mode == "huge":
        # the 50 MB event is dropped in constant memory; the events around it arrive
        if kinds != ["message", "overflow", "message", "done", "end"] or end["overflows"] != 1:
            problem = f"huge: {kinds} {end}"
    elif mode == "noblank":
        if kinds != ["overflow", "end"] or end["events"] != 0:
            problem = f"noblank: {kinds} {end}"
    elif mode == "stall":
        if kinds != ["message", "end"] or end["reason"] != "stalled":
            problem = f"stall: {kinds} {end}"
        run.stall_seconds.append(took)
    if problem is None:
        run.streams[mode] += 1
    else:
        run.failures.append(problem)


async def _client(run: Run, client: Any, mode: str, until: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        # most traffic from a few busy profiles, the rest from a long tail
        hot = rng.random() < 0.7
        profile = f"profile-{rng.randrange(HOT_PROFILES if hot else PROFILES)}"
        started = time.monotonic()
        try:
            response = await client.get(f"{run.base}/chat/{profile}", params={"mode": mode})
        except httpx.HTTPError as exc:
            run.failures.append(f"{mode}: {type(exc).__name__}: {exc}")
            continue
        if response.status_code != 200:
            run.failures.append(f"{mode}: HTTP {response.status_code} {response.text[:200]}")
            continue
        _check_stream(run, mode, _events(response.text), time.monotonic() - started)


async def _prober(run: Run, client: Any, until: float) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            response = await client.get(f"{run.base}/healthz", timeout=10.0)
            ok = response.status_code == 200 and response.json()["ok"] is True
            if not ok:
                run.health_failures.append(f"HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            run.health_failures.append(f"{type(exc).__name__}: {exc}")
        run.health_seconds.append(time.monotonic() - started)
        await asyncio.sleep(0.1)


async def _debug(run: Run, client: Any, path: str) -> dict[str, Any]:
    response = await client.get(f"{run.base}/_debug/memory/{path}", headers=run.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _rows(caches: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for row in caches["caches"]:
        rows.setdefault(row["name"], []).append(row)
    return rows


async def _sampler(run: Run, client: Any, warm: float, until: float) -> None:
    while time.monotonic() < until:
        status = await _debug(run, client, "status")
        if time.monotonic() >= warm:
            if not run.rss_after_warmup:
                run.rss_after_warmup = status["process"]["rss_bytes"]
            run.statuses.append(status)
        run.samples.append(_rows(await _debug(run, client, "caches")))
        await asyncio.sleep(0.5)


async def _drive(run: Run) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    # a 50 MB event is skipped in silence: on a loaded machine that can take a while
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        started = time.monotonic()
        warm, until = started + WARMUP_SECONDS, started + WARMUP_SECONDS + LOAD_SECONDS
        jobs = [_prober(run, client, until), _sampler(run, client, warm, until)]
        seed = 0
        for mode, count in WORKERS.items():
            for _ in range(count):
                seed += 1
                jobs.append(_client(run, client, mode, until, seed))
        await asyncio.gather(*jobs)
        # the load is over: the proxy winds down its streams and audits
        for _ in range(100):
            run.final_caches = _rows(await _debug(run, client, "caches"))
            streams = run.final_caches["sse_proxy.streams"][0]
            audits = run.final_caches["sse_proxy.audits"][0]
            if streams["len"] == 0 and audits["len"] == 0:
                break
            await asyncio.sleep(0.1)
        run.final_status = await _debug(run, client, "status")
        bad = await client.get(f"{run.base}/chat/someone", params={"mode": "bogus"})
        run.bad_mode = (bad.status_code, bad.json().get("error", ""))
        metrics = await client.get(f"{run.base}/metrics")
        run.metrics_status, run.metrics_text = metrics.status_code, metrics.text


def _summary(run: Run) -> str:
    rss = [s["process"]["rss_bytes"] for s in run.statuses] or [0]
    probes = sorted(run.health_seconds) or [0.0]
    final = run.final_caches
    models = final["sse_proxy.models"][0]
    stats = final["sse_proxy.streams"][0]["stats"]
    audits = final["sse_proxy.audits"][0]["stats"]
    peak_models = max(r["sse_proxy.models"][0]["len"] for r in run.samples)
    peak_pending = max(r["sse_proxy.streams"][0]["stats"]["pending_bytes"] for r in run.samples)
    return "\n".join(
        [
            f"streams served: {dict(run.streams)}; failures: {len(run.failures)}",
            f"upstream bytes read: {stats['upstream_bytes_total'] / MIB:,.0f} MiB; "
            f"overflows counted: {stats['overflows_total']} (clients told: "
            f"{run.client_overflows}); stalls cut: {stats['stalled_total']}",
            f"peak SSE pending (all streams): {peak_pending / MIB:.2f} MiB "
            f"(bound {BOUNDS['max_streams']} x {BOUNDS['max_event_bytes'] / MIB:.0f} MiB)",
            f"models: {stats['models_loaded_total']} loaded for {PROFILES} profiles, peak "
            f"{peak_models} kept (maxsize {BOUNDS['model_cache_size']}), "
            f"{models['evictions']:.0f} evicted, hit rate {models['hit_rate']:.2f}",
            f"audits: {audits['spawned_total']} run, peak {audits['peak']} at once (limit "
            f"{BOUNDS['task_limit']}), {stats['audits_dropped_total']} dropped",
            f"RSS after warm-up {run.rss_after_warmup / MIB:.1f} MiB, peak under load "
            f"{max(rss) / MIB:.1f} MiB (+{(max(rss) - run.rss_after_warmup) / MIB:.1f} MiB; "
            f"budget +{RSS_GROWTH_BUDGET / MIB:.0f} MiB), {len(rss)} samples",
            f"/healthz: {len(probes)} probes, median {probes[len(probes) // 2] * 1000:.0f} ms, "
            f"slowest {probes[-1] * 1000:.0f} ms",
        ]
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SSE_PROXY_", "PROMETHEUS"))}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the servers' stderr goes (shown when one fails to start)."""
    return tmp_path_factory.mktemp("sse_proxy")


@pytest.fixture(scope="module")
def upstream_url(logs: Path) -> Iterator[str]:
    """The fake upstream, running; its base URL."""
    upstream, url = _start(["upstream.py", "--port", "0"], _env(), logs / "upstream.log")
    try:
        yield url
    finally:
        _stop(upstream)


def _serve(
    script: str, upstream_url: str, log: Path, **bounds: Any
) -> tuple[subprocess.Popen[str], Run]:
    token = secrets.token_urlsafe(24)
    env = {**_env(), "MEMSCOPE_TOKEN": token, "SSE_PROXY_UPSTREAM": upstream_url}
    env.update({f"SSE_PROXY_{k.upper()}": str(v) for k, v in {**BOUNDS, **bounds}.items()})
    proxy, base = _start([script, "--port", "0"], env, log)
    return proxy, Run(base, {"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def run(upstream_url: str, logs: Path) -> Iterator[Run]:
    """The proxy up, the load driven once; the tests below read what it saw."""
    proxy, result = _serve("app.py", upstream_url, logs / "app.log")
    try:
        asyncio.run(_drive(result))
        print(_summary(result))  # shown with pytest -s: the figures docs quote
        yield result
    finally:
        _stop(proxy)
        log = (logs / "app.log").read_text()
        assert "Traceback" not in log, log[-4000:]


def test_every_stream_is_served_right(run: Run) -> None:
    assert run.failures == []
    assert run.bad_mode[0] == 422 and "mode must be one of" in run.bad_mode[1]
    # every kind of stream went through, many times
    assert run.streams["normal"] >= 20 and run.streams["crlf"] >= 10, run.streams
    assert run.streams["huge"] >= 2 and run.streams["noblank"] >= 2, run.streams
    assert run.streams["stall"] >= 4, run.streams
    # a stalled upstream is cut after read_timeout, not held open
    assert min(run.stall_seconds) >= BOUNDS["read_timeout"] * 0.9
    assert max(run.stall_seconds) < BOUNDS["read_timeout"] + 10.0


def test_health_answers_quickly_throughout(run: Run) -> None:
    assert run.health_failures == []
    probes = sorted(run.health_seconds)
    assert len(probes) >= 30  # one every 0.1 s plus its own time, over 13 s
    median, p95, slowest = probes[len(probes) // 2], probes[len(probes) * 95 // 100], probes[-1]
    # generous for a loaded 2-core machine; a loop blocked by a big buffer stalls for seconds
    assert median < 0.5, f"median /healthz {median:.3f} s"
    assert p95 < 2.0, f"95th percentile /healthz {p95:.3f} s"
    assert slowest < 5.0, f"slowest /healthz {slowest:.3f} s"


def test_tracked_structures_stay_within_their_bounds(run: Run) -> None:
    assert len(run.samples) >= 8
    max_event = BOUNDS["max_event_bytes"]
    for rows in run.samples:
        models = rows["sse_proxy.models"][0]
        assert models["len"] <= BOUNDS["model_cache_size"]
        assert models["size_bytes"] <= BOUNDS["model_cache_size"] * (BOUNDS["model_bytes"] + 4096)
        audits = rows["sse_proxy.audits"][0]
        assert audits["len"] <= BOUNDS["task_limit"]
        streams = rows["sse_proxy.streams"][0]
        assert streams["len"] <= BOUNDS["max_streams"]
        assert streams["stats"]["pending_bytes"] <= streams["len"] * max_event
        for buf in rows.get("sse_proxy.upstream", []):  # one row per live stream
            assert buf["size_bytes"] <= max_event
            assert buf["stats"]["max_event_bytes"] == max_event
        assert len(rows.get("sse_proxy.upstream", [])) <= BOUNDS["max_streams"]

    final = run.final_caches
    models = final["sse_proxy.models"][0]
    # 400 profiles through a 16-model cache: it evicted, and kept only its bound
    audits = final["sse_proxy.audits"][0]["stats"]
    stats = final["sse_proxy.streams"][0]["stats"]
    assert stats["models_loaded_total"] > 4 * BOUNDS["model_cache_size"]
    assert models["misses"] >= stats["models_loaded_total"]  # concurrent misses share a load
    assert models["evictions"] == stats["models_loaded_total"] - models["len"]
    # one audit a stream: run in the tracker, or dropped (and counted) when it was full
    assert audits["spawned_total"] + stats["audits_dropped_total"] >= sum(run.streams.values())
    assert audits["spawned_total"] > 0
    assert audits["peak"] <= BOUNDS["task_limit"] and audits["live"] == 0
    # every overflow a client was told about was counted by the proxy (and the proxy may
    # have counted more: streams cut at the end of the load)
    assert run.client_overflows >= run.streams["huge"] + run.streams["noblank"]
    assert stats["overflows_total"] >= run.client_overflows
    assert stats["stalled_total"] >= run.streams["stall"]
    assert stats["streams_live"] == 0 and stats["pending_bytes"] == 0
    assert stats["refused_total"] == 0  # never full, never shedding
    # the upstream sent far more than the proxy ever held
    assert stats["upstream_bytes_total"] >= run.streams["huge"] * 50_000_000
    guard = final["memory_guard.sse_proxy"][0]["stats"]
    assert guard["running"] is True and guard["checks_total"] >= 10
    assert guard["soft_limit_bytes"] == 400 * MIB and guard["hard_limit_bytes"] == 600 * MIB
    assert guard["hard_limit_events_total"] == 0


def test_rss_stays_bounded_after_warmup(run: Run) -> None:
    rss = [s["process"]["rss_bytes"] for s in run.statuses]
    assert run.rss_after_warmup > 0 and len(rss) >= 5
    growth = max(rss) - run.rss_after_warmup
    assert growth < RSS_GROWTH_BUDGET, f"RSS grew {growth / MIB:.1f} MiB after warm-up: {rss}"
    assert max(rss) < 400 * MIB  # under the MemoryGuard's soft limit: it never had to act
    final = run.final_status["process"]["rss_bytes"]
    assert final - run.rss_after_warmup < RSS_GROWTH_BUDGET
    # the debug app's own monitor kept sampling the whole time
    assert run.final_status["monitor"]["running"] is True
    assert run.final_status["monitor"]["kept"] >= 5
    assert run.final_status["tasks"]["pending"] < 4 * BOUNDS["max_streams"]


def test_metrics_parse_and_show_the_bounded_structures(run: Run) -> None:
    assert run.metrics_status == 200, run.metrics_text[:500]
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(run.metrics_text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    assert any(name.startswith("memscope_") for name in samples)

    def value(metric: str, **labels: str) -> float:
        found = [s.value for s in samples.get(metric, []) if s.labels.items() >= labels.items()]
        assert found, f"no {metric}{labels} in /metrics"
        return float(sum(found))

    models = run.final_caches["sse_proxy.models"][0]
    length = value("memscope_tracked_length", name="sse_proxy.models")
    assert length == models["len"] <= BOUNDS["model_cache_size"]
    assert value("memscope_tracked_length", name="sse_proxy.audits") <= BOUNDS["task_limit"]
    # counters scraped after the final debug read: at least what it saw
    assert value("memscope_cache_misses_total", cache="sse_proxy.models") >= models["misses"]
    evictions = value("memscope_cache_evictions_total", cache="sse_proxy.models", reason="size")
    assert evictions >= models["evictions"] > 0
    # the service's own counters, after memscope's: what ended streams saw stays counted
    stats = run.final_caches["sse_proxy.streams"][0]["stats"]
    assert value("sse_proxy_overflows_total") == stats["overflows_total"] > 0
    assert value("sse_proxy_stalled_total") == stats["stalled_total"] > 0
    assert value("sse_proxy_streams_total") == stats["streams_total"]
    assert value("sse_proxy_refused_total") == 0 and value("sse_proxy_streams_live") == 0


NAIVE_PROFILES = 64  # profiles streamed once each through the naive proxy
NAIVE_MODEL_BYTES = MIB  # 64 of them pass the RSS budget however the allocator places them


async def _drive_naive(run: Run) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        rss_start = (await _debug(run, client, "status"))["process"]["rss_bytes"]
        crlf = []
        for i in range(3):
            response = await client.get(f"{run.base}/chat/crlf-{i}", params={"mode": "crlf"})
            crlf.append([kind for kind, _ in _events(response.text)])

        async def hold(i: int) -> None:  # a huge stream, read until the end of the run
            params = {"mode": "huge"}
            async with client.stream("GET", f"{run.base}/chat/huge-{i}", params=params) as r:
                async for _ in r.aiter_raw():
                    pass

        slots = asyncio.Semaphore(24)

        async def one(i: int) -> None:
            async with slots:
                response = await client.get(f"{run.base}/chat/profile-{i}")
                assert response.status_code == 200

        await asyncio.gather(*(one(i) for i in range(NAIVE_PROFILES)))
        holders = [asyncio.create_task(hold(i)) for i in range(2)]
        await asyncio.sleep(1.0)  # the huge events pile up meanwhile
        status = await _debug(run, client, "status")
        rows = _rows(await _debug(run, client, "caches"))
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    return {"crlf": crlf, "rss_start": rss_start, "status": status, "rows": rows}


def test_the_naive_service_fails_the_same_checks(upstream_url: str, logs: Path) -> None:
    """naive.py, the same service without the guard: the bounds above are really tested."""
    proxy, run = _serve("naive.py", upstream_url, logs / "naive.log", model_bytes=NAIVE_MODEL_BYTES)
    try:
        seen = asyncio.run(_drive_naive(run))
    finally:
        _stop(proxy, graceful=False)  # it would finish its 50 MB rescans first
    # CRLF line ends never match "\n\n": the naive proxy delivers no event at all
    assert seen["crlf"] == [["end"]] * 3
    models, audits = seen["rows"]["naive.models"][0], seen["rows"]["naive.audits"][0]
    assert models["len"] >= NAIVE_PROFILES + 3 > BOUNDS["model_cache_size"]
    assert audits["len"] >= NAIVE_PROFILES + 3 > BOUNDS["task_limit"]  # finished, still held
    growth = seen["status"]["process"]["rss_bytes"] - seen["rss_start"]
    print(
        f"naive: {models['len']} models, {audits['len']} audit tasks held, "
        f"RSS +{growth / MIB:.1f} MiB"
    )
    assert growth > RSS_GROWTH_BUDGET


GUARD_SOFT_LIMIT = 200 * MIB  # the proxy starts at about 75 MiB of RSS
GUARD_MODEL_BYTES = 2 * MIB
GUARD_BATCH = 8  # profiles streamed at once, between two looks at the guard
GUARD_MAX_PROFILES = 160  # 320 MiB of models: far past the limit if the guard never acts


async def _fill_and_wait(run: Run) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=24, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def one(i: int) -> None:
            response = await client.get(f"{run.base}/chat/big-{i}")
            assert response.status_code == 200, response.text

        async def look() -> tuple[dict[str, Any], dict[str, Any], int]:
            rows = _rows(await _debug(run, client, "caches"))
            status = await _debug(run, client, "status")
            return rows, rows["memory_guard.sse_proxy"][0]["stats"], status["process"]["rss_bytes"]

        # new profiles, a batch at a time, until the guard has run a round
        profiles = peak = 0
        while profiles < GUARD_MAX_PROFILES:
            await asyncio.gather(*(one(profiles + i) for i in range(GUARD_BATCH)))
            profiles += GUARD_BATCH
            rows, guard, rss = await look()
            peak = max(peak, rss)
            if guard["action_rounds_total"]:
                break
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:  # checks every 0.5 s: let its round finish
            rows, guard, rss = await look()
            if guard["action_rounds_total"] and rss < GUARD_SOFT_LIMIT:
                break
            await asyncio.sleep(0.25)
    models = rows["sse_proxy.models"][0]
    return {"profiles": profiles, "peak": peak, "rss": rss, "guard": guard, "models": models}


def test_the_guard_gives_memory_back_past_its_soft_limit(upstream_url: str, logs: Path) -> None:
    """RSS that would never fall: past the soft limit the guard clears the models and trims."""
    log = logs / "guard.log"
    proxy, run = _serve(
        "app.py",
        upstream_url,
        log,
        model_cache_size=400,  # a cache bounded far above the memory limit
        model_bytes=GUARD_MODEL_BYTES,
        soft_limit=f"{GUARD_SOFT_LIMIT // MIB}MiB",
        hard_limit="600MiB",
    )
    try:
        seen = asyncio.run(_fill_and_wait(run))
    finally:
        _stop(proxy)
    guard, models = seen["guard"], seen["models"]
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    print(
        f"guard: RSS peak seen {seen['peak'] / MIB:.1f} MiB, after {seen['rss'] / MIB:.1f} MiB "
        f"(soft limit {GUARD_SOFT_LIMIT / MIB:.0f} MiB); {guard['action_rounds_total']} round(s), "
        f"{guard['actions_total']} action(s); {models['len']} of {seen['profiles']} models kept"
    )
    assert guard["action_rounds_total"] >= 1 and guard["action_errors_total"] == 0
    # the first release_memory could not help (the models are live); dropping them did
    assert guard["actions_total"] >= 2
    assert "is over the soft limit 200.0 MiB" in text
    assert "action Proxy.drop_models" in text and "memory pressure: dropped " in text
    assert models["len"] < seen["profiles"]  # emptied once, refilled by later streams at most
    # RSS fell well under the limit, not just under it: the trim after the drop gave it back
    assert seen["rss"] < GUARD_SOFT_LIMIT * 0.85
