"""Each endpoint over real HTTP, against what memscope's own pieces say about this process."""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import memscope
from memscope.web import debug_app

from .conftest import AUTH, TOKEN, Server


class Planted:
    """Instances only this test makes: their census count is exact."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def test_status(client: httpx.Client) -> None:
    r = client.get("status")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["pid"] == os.getpid()
    assert body["process"]["rss_bytes"] > 10 * 1024 * 1024
    assert body["gc"]["enabled"] is True
    assert {"models", "upstream_sse"} <= set(body["tracked"]["names"])
    assert body["monitor"]["running"] is True and body["monitor"]["interval_seconds"] == 0.2
    assert body["expose_reprs"] is False
    assert body["errors"] == {}


def test_objects_counts_what_lives(client: httpx.Client) -> None:
    planted = [Planted(i) for i in range(3000)]
    r = client.get("objects", params={"limit": 500})
    assert r.status_code == 200
    body = r.json()
    assert len(body["by_type"]) <= 500 and body["by_module"]
    rows = [row for row in body["by_type"] if row["type"].endswith("test_endpoints.Planted")]
    assert rows and rows[0]["count"] == 3000
    assert rows[0]["size_bytes"] == 3000 * sys.getsizeof(planted[0])
    small = client.get("objects", params={"limit": 3}).json()
    assert len(small["by_type"]) == 3


def test_containers_finds_the_longest(client: httpx.Client) -> None:
    longest = list(range(250_000))
    r = client.get("containers", params={"limit": 3})
    assert r.status_code == 200
    top = r.json()["top"]
    assert len(top) <= 3
    assert top[0]["length"] == len(longest)
    assert top[0]["summary"] == "<redacted>"


def test_caches_show_hits_misses_evictions(client: httpx.Client) -> None:
    body = client.get("caches").json()
    rows = {row["name"]: row for row in body["caches"]}
    models = rows["models"]
    assert (models["hits"], models["misses"], models["evictions"]) == (10, 5, 68)
    assert models["hit_rate"] == pytest.approx(10 / 15)
    assert models["len"] == 32 and models["size_bytes"] > 32_000
    assert rows["upstream_sse"]["overflows"] >= 1
    assert rows["upstream_sse"]["hit_rate"] is None


def test_history_and_trends(client: httpx.Client, service: tuple[Server, Any]) -> None:
    _, app = service
    monitor = app.state.monitor
    monitor.take()  # one from this thread too, beside the monitor's own (every 0.2 s)
    deadline = time.monotonic() + 60
    while len(monitor) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    body = client.get("history").json()
    points = body["points"]
    assert len(points) >= 3
    stamps = [p["timestamp"] for p in points]
    assert stamps == sorted(stamps)
    assert all(p["rss_bytes"] > 0 for p in points)
    assert isinstance(body["trends"], list)
    assert body["alerts"] and body["alerts"][0]["metric"] == "rss_bytes"  # 1 MiB threshold
    recent = client.get("history", params={"seconds": 1}).json()["points"]
    assert len(recent) <= len(points)


def test_top_needs_tracing(client: httpx.Client) -> None:
    off = client.get("top").json()
    assert off["tracing"] is False and "start_tracing" in off["note"]
    memscope.start_tracing()
    try:
        blocks = [bytearray(4096) for _ in range(500)]  # 2 MiB from this line
        body = client.get("top", params={"limit": 5}).json()
    finally:
        memscope.stop_tracing()
    assert body["tracing"] is True and len(body["top"]) <= 5
    assert any("test_endpoints.py" in row["site"] for row in body["top"])
    assert len(blocks) == 500


def test_tasks(client: httpx.Client) -> None:
    body = client.get("tasks").json()
    assert body["asyncio_imported"] is True and body["count"] >= 1  # uvicorn's own tasks


def test_gc_collects_cycles(client: httpx.Client) -> None:
    gc.collect()
    gc.disable()  # else the automatic collections take the cycles first
    try:
        for _ in range(1000):
            a: list[object] = []
            a.append(a)
        del a
        body = client.post("gc").json()
    finally:
        gc.enable()
    assert body["generation"] == 2 and body["collected"] >= 1000
    assert body["rss_before_bytes"] > 0 and body["seconds"] >= 0
    assert client.post("gc", params={"generation": 0}).json()["generation"] == 0
    assert client.get("gc").status_code == 405


def test_snapshot_compare_and_the_bounded_store() -> None:
    app = debug_app(token=TOKEN, monitor=memscope.Monitor(label="idle"), max_snapshots=3)
    with (
        Server(app) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http,
    ):
        # free memory an earlier test left resident would serve `grown` without new pages
        memscope.release_memory()
        first = http.post("/snapshot").json()
        assert first["id"] == 1 and first["deep"] is False and first["dropped"] == []
        grown = [b"\x01" * 1000 for _ in range(20_000)]  # ~20 MiB between the two, written
        second = http.post("/snapshot").json()
        diff = http.post("/compare", params={"a": 1, "b": 2}).json()
        assert diff["a"] == 1 and diff["b"] == 2
        assert "memscope diff 'debug_app cheap' -> 'debug_app cheap'" in diff["text"]
        rss = [c for c in diff["diff"]["sections"]["process"] if c["key"] == "rss_bytes"]
        assert rss and rss[0]["delta"] == second["rss_bytes"] - first["rss_bytes"]
        assert http.get("/compare?a=2&b=1").status_code == 200
        ids = [http.post("/snapshot").json() for _ in range(3)]
        assert [s["id"] for s in ids] == [3, 4, 5]
        assert ids[1]["dropped"] == [1] and ids[2]["dropped"] == [2]
        listing = http.get("/snapshots").json()
        assert [s["id"] for s in listing["snapshots"]] == [3, 4, 5] and listing["maxsize"] == 3
        gone = http.get("/compare?a=1&b=5")
        assert gone.status_code == 404
        assert gone.json()["parameter"] == "a" and "kept ids: [3, 4, 5]" in gone.json()["error"]
        missing = http.get("/compare?a=3")
        assert missing.status_code == 422 and missing.json()["parameter"] == "b"
        deep = http.post("/snapshot?deep=true").json()
        assert deep["deep"] is True and "census" in deep["sections"]
        assert len(grown) == 20_000


def test_clear_caches_and_release(client: httpx.Client) -> None:
    class TrackedDict(dict[str, int]):
        pass

    cache = memscope.track(TrackedDict(a=1, b=2, c=3), name="web_test_dict", clear=True)
    body = client.post("clear_caches").json()
    assert body["cleared"]["web_test_dict"] == 3 and len(cache) == 0
    assert body["entries_total"] >= 3
    released = client.post("release").json()
    assert released["text"].startswith("release_memory: RSS")
    assert released["rss_before_bytes"] > 0
    memscope.untrack(cache)


def test_metrics(client: httpx.Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(r.text)}
    assert "memscope_rss_part_bytes" in families
    assert "process_resident_memory_bytes" not in families  # prometheus_client's own


class Ring:
    """Half of a reference cycle the leaks endpoint must count."""

    def __init__(self) -> None:
        self.other: Ring | None = None


@pytest.mark.slow
def test_leaks_counts_planted_cycles(client: httpx.Client) -> None:
    gc.collect()
    gc.disable()  # the cycles wait for find_leaks' own collection
    try:
        for _ in range(300):
            a, b = Ring(), Ring()
            a.other, b.other = b, a
        del a, b
        r = client.get("leaks", params={"limit": 5, "rounds": 2})
    finally:
        gc.enable()
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"cycles", "garbage", "growing", "text"} <= set(body)
    ours = [c for c in body["cycles"] if c["type"].endswith("test_endpoints.Ring")]
    assert ours and ours[0]["count"] == 600
    assert "Ring.other" in ours[0]["sample"]


@pytest.mark.parametrize(
    ("path", "method", "query", "parameter", "accepted"),
    [
        ("objects", "GET", "limit=0", "limit", "an integer from 1 to 500"),
        ("objects", "GET", "limit=501", "limit", "an integer from 1 to 500"),
        ("objects", "GET", "limit=ten", "limit", "an integer from 1 to 500"),
        ("objects", "GET", "limit=1.5", "limit", "an integer from 1 to 500"),
        ("objects", "GET", "limit=1&limit=2", "limit", "an integer from 1 to 500"),
        ("containers", "GET", "limit=", "limit", "an integer from 1 to 200"),
        ("top", "GET", "limit=1001", "limit", "an integer from 1 to 1000"),
        ("leaks", "GET", "rounds=11", "rounds", "an integer from 1 to 10"),
        ("history", "GET", "seconds=nan", "seconds", "a number from 1 to 1e+08"),
        ("history", "GET", "seconds=0", "seconds", "a number from 1 to 1e+08"),
        ("status", "GET", "verbose=1", "verbose", "none"),
        ("snapshot", "POST", "deep=maybe", "deep", "true or false"),
        ("gc", "POST", "generation=3", "generation", "an integer from 0 to 2"),
        ("compare", "GET", "a=0&b=1", "a", "a snapshot id"),
        ("compare", "GET", "a=1&b=-4", "b", "a snapshot id"),
        ("caches", "GET", "x=%ff", "query", "name=value pairs"),
        ("caches", "GET", "x=" + "9" * 3000, "query", "at most 2048 bytes"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    client: httpx.Client, path: str, method: str, query: str, parameter: str, accepted: str
) -> None:
    r = client.request(method, f"{path}?{query}")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["parameter"] == parameter
    assert body["accepted"].startswith(accepted)
    assert parameter in body["error"]


@pytest.mark.parametrize("framework", ["starlette", "fastapi", "none"])
def test_mounts_in_starlette_and_fastapi(framework: str) -> None:
    dbg = debug_app(token=TOKEN, monitor=memscope.Monitor(label="idle"))
    if framework == "starlette":
        app: Any = Starlette(routes=[Mount("/_debug/memory", app=dbg)])
        prefix = "/_debug/memory"
    elif framework == "fastapi":
        from fastapi import FastAPI

        app = FastAPI()
        app.mount("/_debug/memory", dbg)
        prefix = "/_debug/memory"
    else:
        app, prefix = dbg, ""
    with Server(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get(f"{prefix}/status", headers=AUTH).json()["pid"] == os.getpid()
        assert http.get(f"{prefix}/status").status_code == 401
        page = http.get(f"{prefix}/", follow_redirects=True)
        assert page.status_code == 200 and "<title>memscope</title>" in page.text
        assert (
            http.get(f"{prefix}/static/app.js")
            .headers["content-type"]
            .startswith(("text/javascript", "application/javascript"))
        )
        assert http.post(f"{prefix}/gc", headers=AUTH).status_code == 200
        r = http.get(f"{prefix}/nowhere", headers=AUTH)
        assert r.status_code == 404 and r.json() == {"error": "Not Found"}
