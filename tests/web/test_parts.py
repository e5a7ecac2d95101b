"""The debug app's parts on their own: query parameters, the scrubber, the snapshot store."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memscope
from memscope.web import debug_app
from memscope.web.params import MAX_QUERY_BYTES, Param, ParamError, parse_query
from memscope.web.scrub import REDACTED, scrub
from memscope.web.store import SnapshotStore

SPEC = {
    "limit": Param("int", 20, 1, 100),
    "deep": Param("bool", False),
    "seconds": Param("float", None, 1.0, 60.0),
    "a": Param("id", required=False),
}


def error_of(query: bytes) -> ParamError:
    with pytest.raises(ParamError) as info:
        parse_query(query, SPEC)
    return info.value


def test_parse_query_defaults_and_values() -> None:
    assert parse_query(b"", SPEC) == {"limit": 20, "deep": False, "seconds": None, "a": None}
    got = parse_query(b"limit=100&deep=TRUE&seconds=2.5&a=7", SPEC)
    assert got == {"limit": 100, "deep": True, "seconds": 2.5, "a": 7}
    assert parse_query(b"limit=+5&deep=0", SPEC)["limit"] == 5
    assert parse_query(b"limit=%35", SPEC)["limit"] == 5  # percent-encoded digits


@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        (b"limit=0", "limit", "limit must be an integer from 1 to 100, got '0'"),
        (b"limit=101", "limit", "from 1 to 100"),
        (b"limit=1e2", "limit", "an integer"),
        (b"limit=" + b"9" * 40, "limit", "an integer"),
        (b"seconds=inf", "seconds", "a number from 1 to 60"),
        (b"seconds=0.5", "seconds", "a number from 1 to 60"),
        (b"deep=2", "deep", "true or false"),
        (b"a=0", "a", "a snapshot id"),
        (b"limit=1&limit=1", "limit", "given more than once"),
        (b"other=1", "other", "unknown parameter 'other'; this endpoint accepts: limit, deep"),
        (b"x" * 60 + b"=1", "x" * 37 + "...", "unknown parameter"),
        (b"limit=%ff", "query", "not valid percent-encoded UTF-8"),
        (b"\xff=1", "query", "not valid percent-encoded UTF-8"),
        (b"&".join([b"limit=1"] * 40), "query", "too many fields"),
        (b"x" * (MAX_QUERY_BYTES + 1), "query", f"at most {MAX_QUERY_BYTES:,} are accepted"),
    ],
)
def test_parse_query_errors_name_the_parameter(query: bytes, parameter: str, words: str) -> None:
    error = error_of(query)
    assert error.parameter == parameter
    assert words in str(error)
    assert error.to_dict()["parameter"] == parameter
    assert len(str(error)) < 200  # a huge input never makes a huge message


def test_required_parameter() -> None:
    with pytest.raises(ParamError, match="b is required: a snapshot id"):
        parse_query(b"", {"b": Param("id", required=True)})


def test_scrub_drops_contents_and_quoted_literals() -> None:
    data = {
        "top": [
            {
                "key": "dict key 'sess-4f2a' of module app attribute sessions",
                "summary": "dict of 3 items; keys like 'sess-4f2a'",
                "length": 3,
                "where": 'item b"\\x00secret" of list',
            }
        ],
        "text": "memscope diff 'debug_app deep' -> 'mine'",
        "value": None,
    }
    clean = scrub(data, keep={"debug_app deep"})
    row = clean["top"][0]
    assert row["summary"] == REDACTED and row["length"] == 3
    assert row["key"] == f"dict key {REDACTED} of module app attribute sessions"
    assert row["where"] == f"item {REDACTED} of list"
    assert clean["text"] == f"memscope diff 'debug_app deep' -> {REDACTED}"
    assert clean["value"] is None
    assert "sess-" not in repr(clean) and "secret" not in repr(clean)
    assert data["top"][0]["summary"].startswith("dict of 3")  # the input is untouched
    deep: Any = "x 'y'"
    for _ in range(30):
        deep = [deep]
    assert "y" not in repr(scrub(deep))


def test_store_is_bounded_and_drops_the_oldest() -> None:
    store = SnapshotStore(2)
    snaps = [memscope.snapshot(label=f"s{i}", collectors=["gc"]) for i in range(4)]
    assert store.add(snaps[0]) == (1, [])
    assert store.add(snaps[1]) == (2, [])
    assert store.add(snaps[2]) == (3, [1])
    assert store.add(snaps[3]) == (4, [2])
    assert len(store) == 2 and store.get(1) is None and store.get(4) is snaps[3]
    assert [row["id"] for row in store.listing()] == [3, 4]
    assert store.memscope_stats() == {"kept": 2, "maxsize": 2, "dropped_total": 2}
    with pytest.raises(ValueError, match="max_snapshots"):
        SnapshotStore(0)
    with pytest.raises(TypeError, match="max_snapshots"):
        SnapshotStore(2.5)  # type: ignore[arg-type]


def test_own_monitor_starts_on_first_use_and_stops_with_the_app() -> None:
    app = debug_app(token="t" * 16)
    state = app.state.memscope
    assert state.own_monitor and not state.monitor.running  # building starts nothing
    assert state.monitor.interval == 5.0 and set(state.monitor.thresholds) == {"rss_bytes"}

    async def run() -> None:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            r = await http.get("/history", headers={"Authorization": "Bearer " + "t" * 16})
            assert r.status_code == 200
        assert state.monitor.running
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(run())
    assert not state.monitor.running


def test_websockets_are_closed() -> None:
    app = debug_app(loopback_only=True, monitor=memscope.Monitor(label="idle"))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/status",
        "client": ("127.0.0.1", 1),
        "headers": [],
        "query_string": b"",
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    assert sent and sent[0]["type"] == "websocket.close"


def _get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get(path)

    return asyncio.run(go())


def test_the_app_holds_at_most_its_share_of_worker_threads() -> None:
    from memscope.web.state import WORKERS

    app = debug_app(loopback_only=True, monitor=memscope.Monitor(label="idle"), scan_interval=0.0)
    state = app.state.memscope
    for _ in range(WORKERS):
        assert state.workers.acquire(blocking=False)  # every slot taken
    try:
        for path in ("/status", "/caches", "/objects?limit=1"):
            r = _get(app, path)
            assert r.status_code == 429, path
            assert r.headers["retry-after"] == "1"
            assert f"{WORKERS} debug app requests are running" in r.json()["error"]
        assert state.gate.running is None  # a refused scan does not keep the gate
    finally:
        for _ in range(WORKERS):
            state.workers.release()
    assert _get(app, "/objects?limit=1").status_code == 200
    assert _get(app, "/status").status_code == 200


def test_metrics_without_the_prometheus_extra_is_a_501(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    # None in sys.modules makes the import fail, as it does without prometheus_client
    monkeypatch.setitem(sys.modules, "memscope.integrations.prometheus", None)
    app = debug_app(loopback_only=True, monitor=memscope.Monitor(label="idle"))
    r = _get(app, "/metrics")
    assert r.status_code == 501
    assert "pip install 'memscope[prometheus]'" in r.json()["error"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_parse_query_refuses_any_bytes_with_a_param_error_only(query: bytes) -> None:
    try:
        got = parse_query(query, SPEC)
    except ParamError as exc:
        assert exc.parameter and exc.accepted and len(str(exc)) < 300
    else:
        assert set(got) == set(SPEC)
        assert 1 <= got["limit"] <= 100 and isinstance(got["deep"], bool)


_FUZZ_APP: list[Any] = []


def _fuzz_app() -> Any:
    if not _FUZZ_APP:  # one app for every example: its gate refuses repeated scans
        _FUZZ_APP.append(
            debug_app(
                loopback_only=True, monitor=memscope.Monitor(label="idle"), scan_interval=3600.0
            )
        )
    return _FUZZ_APP[0]


_ROUTES = [
    "status",
    "top",
    "objects",
    "containers",
    "caches",
    "tasks",
    "history",
    "snapshots",
    "gc",
    "snapshot",
    "compare",
    "clear_caches",
    "nowhere",
    "static/x",
]


async def _call(app: Any, method: str, path: str, query: bytes) -> int:
    """The status of one request handed to the ASGI app as it is (no client re-encodes it)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    assert len(statuses) == 1
    return statuses[0]


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE"]),
    route=st.sampled_from(_ROUTES),
    query=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
)
def test_any_query_on_any_route_is_below_500(method: str, route: str, query: bytes) -> None:
    assert asyncio.run(_call(_fuzz_app(), method, f"/{route}", query)) < 500
