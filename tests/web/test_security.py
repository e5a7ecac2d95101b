"""Who gets in: the token rules, the loopback rule, the rate limit and single flight, reprs."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import psutil
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import memscope
from memscope.web import debug_app
from memscope.web.app import STATIC
from memscope.web.security import ScanGate, is_loopback, token_ok

from .conftest import AUTH, TOKEN, Server


def quiet_monitor() -> memscope.Monitor:
    """A monitor that is never started: the app then starts no thread of its own."""
    return memscope.Monitor(interval=60, label="security-test")


# -- the arguments -----------------------------------------------------------------------


def test_no_token_is_refused_unless_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"token is required.*loopback_only=True"):
        debug_app()
    with pytest.raises(ValueError, match="at least 16 characters"):
        debug_app(token="short")
    with pytest.raises(ValueError, match="surrounding spaces"):
        debug_app(token=" " + TOKEN)
    with pytest.raises(ValueError, match="ASCII"):
        debug_app(token="é" * 20)
    with pytest.raises(TypeError, match="token must be a str or None, got bytes"):
        debug_app(token=TOKEN.encode())
    with pytest.raises(TypeError, match="loopback_only must be True or False, got int"):
        debug_app(token=TOKEN, loopback_only=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expose_reprs must be True or False"):
        debug_app(token=TOKEN, expose_reprs="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"monitor must be a memscope\.Monitor or None, got str"):
        debug_app(token=TOKEN, monitor="m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scan_interval must be"):
        debug_app(token=TOKEN, scan_interval=-1)
    with pytest.raises(ValueError, match="max_snapshots must be"):
        debug_app(token=TOKEN, max_snapshots=0)
    assert debug_app(loopback_only=True, monitor=quiet_monitor()) is not None


# -- the token ---------------------------------------------------------------------------


def test_token_ok_reads_one_bearer_header() -> None:
    expected = TOKEN.encode()
    assert token_ok(expected, [(b"authorization", b"Bearer " + expected)])
    assert token_ok(expected, [(b"Authorization", b"bearer  " + expected + b" ")])
    assert not token_ok(expected, [])
    assert not token_ok(expected, [(b"authorization", b"Basic " + expected)])
    assert not token_ok(expected, [(b"authorization", expected)])
    assert not token_ok(expected, [(b"authorization", b"Bearer " + expected[:-1])])
    assert not token_ok(expected, [(b"authorization", b"Bearer " + expected + b"x")])
    assert not token_ok(expected, [(b"authorization", b"Bearer \xff\xfe")])
    two = [(b"authorization", b"Bearer " + expected), (b"authorization", b"Bearer x")]
    assert not token_ok(expected, two)


def test_401_without_or_with_a_wrong_token(service: tuple[Server, Any]) -> None:
    server, _ = service
    base = server.url + "/_debug/memory/"
    with httpx.Client(base_url=base, timeout=60) as http:
        for path, method in [
            ("status", "GET"),
            ("objects", "GET"),
            ("gc", "POST"),
            ("release", "POST"),
            ("metrics", "GET"),
            ("nowhere", "GET"),
        ]:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-0123456789abc"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": TOKEN},
            ):
                r = http.request(method, path, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert "bearer token" in r.json()["error"]
        assert http.get("status", headers=AUTH).status_code == 200
        # the dashboard shell and its files hold no data and load without the token
        page = http.get("")
        assert page.status_code == 200
        assert "static/app.js" in page.text
        assert page.content == (STATIC / "index.html").read_bytes()  # the file, no data
        for name in ("app.js", "style.css"):
            assert http.get(f"static/{name}").status_code == 200
        assert "content-security-policy" in page.headers
        assert page.headers["cache-control"] == "no-store"
        # the mount without its slash redirects to the dashboard
        r = http.get(server.url + "/_debug/memory", follow_redirects=False)
        assert r.status_code in (307, 308)


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text and "//cdn" not in text and "@import" not in text
        assert "fonts.googleapis" not in text


# -- the loopback rule -------------------------------------------------------------------


def test_is_loopback() -> None:
    assert is_loopback(("127.0.0.1", 5000))
    assert is_loopback(("127.8.9.10", 1))
    assert is_loopback(("::1", 1))
    assert is_loopback(("::ffff:127.0.0.1", 1))
    assert not is_loopback(("::ffff:10.0.0.1", 1))
    assert not is_loopback(("10.0.0.1", 1))
    assert not is_loopback(("192.0.2.2", 1))
    assert not is_loopback(("localhost", 1))  # a name is not an address
    assert not is_loopback(None)
    assert not is_loopback(("", 1))


def _asgi_get(app: Any, client: tuple[str, int], path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as h:
            return await h.get(path, **kw)

    return asyncio.run(go())


def test_loopback_only_refuses_other_hosts_with_403() -> None:
    app = debug_app(loopback_only=True, monitor=quiet_monitor())
    assert _asgi_get(app, ("127.0.0.1", 4000), "/status").status_code == 200
    assert _asgi_get(app, ("::1", 4000), "/status").status_code == 200
    for peer in ("10.1.2.3", "192.0.2.7", "::ffff:10.0.0.1", "2001:db8::1"):
        r = _asgi_get(app, (peer, 4000), "/status")
        assert r.status_code == 403, peer
        assert "only clients on this host" in r.json()["error"]
        assert _asgi_get(app, (peer, 4000), "/").status_code == 403  # not even the page
    # with a token too, both rules hold
    both = debug_app(token=TOKEN, loopback_only=True, monitor=quiet_monitor())
    assert _asgi_get(both, ("127.0.0.1", 1), "/status").status_code == 401
    assert _asgi_get(both, ("127.0.0.1", 1), "/status", headers=AUTH).status_code == 200
    assert _asgi_get(both, ("10.0.0.1", 1), "/status", headers=AUTH).status_code == 403


def _non_loopback_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


def test_loopback_only_over_real_http_from_another_address() -> None:
    other = _non_loopback_address()
    if other is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    app = Starlette(
        routes=[Mount("/dbg", app=debug_app(loopback_only=True, monitor=quiet_monitor()))]
    )
    server = Server(app)
    server.server.config.host = "0.0.0.0"
    with server:
        port = server.port
        with httpx.Client(timeout=60) as http:
            assert http.get(f"http://127.0.0.1:{port}/dbg/status").status_code == 200
            r = http.get(f"http://{other}:{port}/dbg/status")
            assert r.status_code == 403, r.text


# -- heavy scans: single flight and the rate limit --------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_scan_gate_single_flight_and_interval() -> None:
    clock = FakeClock()
    gate = ScanGate(2.0, clock=clock)
    assert gate.enter("objects").admitted
    busy = gate.enter("leaks")
    assert not busy.admitted and "a objects scan is running" in busy.reason
    assert busy.retry_after_header == "1"
    clock.now += 3.0  # the scan took 3 s
    gate.release()
    assert gate.running is None
    early = gate.enter("objects")  # 3 s since the start: past the 2 s interval
    assert early.admitted
    clock.now += 0.5
    gate.release()
    soon = gate.enter("containers")
    assert not soon.admitted and soon.retry_after == pytest.approx(1.5)
    assert soon.retry_after_header == "2"
    clock.now += 1.5
    assert gate.enter("containers").admitted
    assert gate.refused_total == 2 and gate.admitted_total == 3
    with pytest.raises(ValueError, match="scan_interval"):
        ScanGate(-1.0)


def test_429_with_retry_after_for_concurrent_and_frequent_scans() -> None:
    app = debug_app(token=TOKEN, monitor=quiet_monitor(), scan_interval=60.0)
    with (
        Server(app) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http,
    ):
        first = http.get("/objects?limit=3")
        assert first.status_code == 200
        for path in ("/objects", "/containers", "/leaks"):
            r = http.get(path)
            assert r.status_code == 429, (path, r.text)
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert "at most once every 60 s" in r.json()["error"]
        assert http.post("/snapshot", params={"deep": "true"}).status_code == 429
        # cheap endpoints are not gated
        assert http.post("/snapshot").status_code == 200
        assert http.get("/status").status_code == 200

    app = debug_app(token=TOKEN, monitor=quiet_monitor(), scan_interval=0.0)
    gate = app.state.memscope.gate
    with (
        Server(app) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http,
    ):
        assert gate.enter("deep snapshot").admitted  # a scan in flight
        r = http.get("/containers")
        assert r.status_code == 429
        assert "a deep snapshot scan is running" in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1
        gate.release()
        assert http.get("/containers?limit=2").status_code == 200


PLANTED: list[object] = []


@pytest.mark.slow
def test_a_heap_scan_runs_off_the_event_loop(service: tuple[Server, Any]) -> None:
    server, app = service
    PLANTED.extend({"n": i} for i in range(600_000))  # a heap that takes a while to scan
    try:
        gate = next(
            r.app.state.memscope.gate
            for r in app.routes
            if getattr(r, "path", "") == "/_debug/memory"
        )
        outcome: dict[str, Any] = {}

        def scan() -> None:
            with httpx.Client(timeout=300) as http:
                outcome["scan"] = http.get(server.url + "/_debug/memory/objects", headers=AUTH)

        worker = threading.Thread(target=scan)
        worker.start()
        deadline = time.monotonic() + 60
        while gate.running is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert gate.running == "objects"
        served_during_scan = 0
        with httpx.Client(timeout=60) as http:
            while gate.running is not None:
                assert http.get(server.url + "/hello").json() == {"hello": "world"}
                if gate.running is not None:
                    served_during_scan += 1
        worker.join(300)
        assert outcome["scan"].status_code == 200
        assert served_during_scan >= 1  # the host answered while its heap was being scanned
    finally:
        PLANTED.clear()


# -- reprs -------------------------------------------------------------------------------


class Sessions:
    """Holds secrets as dict keys, in a container long enough to top the containers list."""

    def __init__(self) -> None:
        self.by_token = {f"sk-live-SECRET{i:06d}": i for i in range(20_000)}


def test_reprs_stay_out_unless_expose_reprs() -> None:
    holder = Sessions()
    for expose in (False, True):
        app = debug_app(
            token=TOKEN, monitor=quiet_monitor(), scan_interval=0.0, expose_reprs=expose
        )
        with (
            Server(app) as server,
            httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http,
        ):
            r = http.get("/containers?limit=5")
            assert r.status_code == 200
            rows = r.json()["top"]
            ours = [row for row in rows if row["length"] == 20_000]
            assert ours, rows
            if expose:
                assert "sk-live-SECRET" in ours[0]["summary"]
            else:
                a = http.post("/snapshot?deep=true").json()["id"]
                b = http.post("/snapshot?deep=true").json()["id"]
                diff = http.get(f"/compare?a={a}&b={b}").text
                assert "containers" in diff
                assert "sk-live-SECRET" not in r.text
                assert "sk-live-SECRET" not in diff
                assert ours[0]["summary"] == "<redacted>"
    assert len(holder.by_token) == 20_000
