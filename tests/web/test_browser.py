"""The dashboard end to end: uvicorn on loopback, headless Chromium logs in and clicks.

Set MEMSCOPE_WEB_SCREENSHOT=docs/web.png to also write the screenshot docs/web.md shows.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import TOKEN, Server

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Any:
    if not os.path.exists(CHROMIUM) and shutil.which("chromium") is None:
        # CI must run the browser for real: there a missing chromium is a failure
        if os.environ.get("MEMSCOPE_CI"):
            pytest.fail("MEMSCOPE_CI is set but Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_logs_in_clicks_and_updates(browser: Any, service: tuple[Server, Any]) -> None:
    from playwright.sync_api import expect

    server, app = service
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.set_default_timeout(60_000)  # two shared cores: be patient, never flaky
    expect.set_options(timeout=60_000)
    page.goto(server.url + "/_debug/memory/")

    # locked until the token is given
    page.wait_for_selector("#login:not([hidden])")
    assert page.is_hidden("#dash")
    page.fill("#token", "wrong-token-0123456789")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_have_text("wrong token")

    page.fill("#token", TOKEN)
    page.click("#login-form button")
    page.wait_for_selector("#dash:not([hidden])")
    # the status, the caches with their hit rate, and the census arrive
    expect(page.locator("#process")).to_contain_text("RSS")
    page.wait_for_selector("#caches td:text-is('models')")
    row = page.locator("#caches tr", has_text="models").inner_text()
    assert "66.7 %" in row  # 10 hits, 5 misses
    assert "68" in row  # evictions
    sse_cells = page.locator("#caches tr", has_text="upstream_sse").inner_text().split("\t")
    overflows = app.state.keep[1].overflows_total
    assert overflows > 0
    assert sse_cells[-1].strip() == str(overflows)
    page.wait_for_selector("#types tbody tr")
    assert page.locator("#modules tbody tr").count() > 0
    # the monitor samples every 0.2 s: the chart draws a line, the 1 MiB threshold alerts
    page.wait_for_selector("#chart path.line")
    page.wait_for_selector("#alerts li.alert")
    assert "rss_bytes" in page.inner_text("#alerts")

    # a button updates the page: two snapshots, then compare them
    page.click("#btn-snapshot")
    expect(page.locator("#result")).to_contain_text("snapshot #1 (cheap)")
    page.click("#btn-snapshot")
    expect(page.locator("#result")).to_contain_text("snapshot #2 (cheap)")
    expect(page.locator("#snapshots li")).to_have_count(2)
    page.wait_for_selector("#btn-compare:not([disabled])")
    page.click("#btn-compare")
    expect(page.locator("#result")).to_contain_text("memscope diff 'debug_app cheap'")
    page.click("#btn-gc")
    expect(page.locator("#result")).to_contain_text("gc.collect(2):")

    # the token never went into a URL; nothing was fetched from another host
    assert requests
    assert all(TOKEN not in url for url in requests)
    assert all(url.startswith(server.url) for url in requests)

    shot = os.environ.get("MEMSCOPE_WEB_SCREENSHOT")
    if shot:
        page.click("#btn-release")
        expect(page.locator("#result")).to_contain_text("release_memory: RSS")
        page.screenshot(path=str(Path(shot)), full_page=True)

    # logging out forgets the token
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('memscope.token')") is None
