"""memscope's /metrics scraped over HTTP: one uvicorn process, and gunicorn with 2 workers.

Both serve tests/integrations/apps/metrics_app.py on loopback (port 0), and every scrape
is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent
TIMEOUT = 60.0  # a loaded 2-core machine starts workers slowly


class Server:
    """A server subprocess whose stderr lines are read in a thread (the pipe never fills)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, cwd=APPS, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log.append(line)
            match = re.search(pattern, line)
            if match is not None:
                return match
        raise AssertionError(f"no {pattern!r} in the server's output:\n{''.join(self.log)}")

    def drain(self) -> str:
        while True:
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def scrape(base: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:  # a worker restarting: ask again
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: never true (last: {last!r})")


def total(families: dict[str, Any], family: str, sample: str) -> float:
    return (
        sum(s.value for s in families[family].samples if s.name == sample)
        if family in families
        else 0.0
    )


def pids_of(families: dict[str, Any]) -> set[int]:
    family = families.get("memscope_rss_part_bytes")
    return {int(s.labels["pid"]) for s in family.samples} if family is not None else set()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    out["PYTHONPATH"] = os.pathsep.join([str(APPS), out.get("PYTHONPATH", "")])
    out["HOME"] = str(tmp_path)  # nothing of gunicorn's lands in the real home
    return out


@pytest.fixture
def single(env: dict[str, str]) -> Iterator[str]:
    code = (
        "import socket, sys, uvicorn\n"
        "sock = socket.socket(); sock.bind(('127.0.0.1', 0)); sock.listen(64)\n"
        "print('PORT', sock.getsockname()[1], flush=True)\n"
        "config = uvicorn.Config('metrics_app:app', log_level='warning', lifespan='on')\n"
        "uvicorn.Server(config).run(sockets=[sock])\n"
    )
    server = Server([sys.executable, "-c", code], env)
    try:
        port = server.wait_for(r"PORT (\d+)").group(1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_a_running_app_is_scraped_over_http(single: str) -> None:
    for key in ("a", "b", "a", "a", "c"):
        assert httpx.get(f"{single}/hit", params={"key": key}, timeout=30).status_code == 200
    families = scrape(single)
    assert all(name.startswith("memscope_") for name in families)
    label = {"cache": "models"}
    hits = [s for s in families["memscope_cache_hits"].samples if s.labels == label]
    misses = [s for s in families["memscope_cache_misses"].samples if s.labels == label]
    assert (hits[0].value, misses[0].value) == (2, 3)
    parts = {s.labels["part"]: s.value for s in families["memscope_rss_part_bytes"].samples}
    assert parts["anon"] > 1 << 20
    assert "pid" not in families["memscope_rss_part_bytes"].samples[0].labels  # one process
    assert families["memscope_asyncio_tasks"].samples  # uvicorn runs on asyncio
    assert families["memscope_gc_pause_seconds"].type == "histogram"


@pytest.mark.slow
def test_gunicorn_with_two_uvicorn_workers_publishes_each_worker(
    env: dict[str, str], tmp_path: Path
) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    env["MEMSCOPE_PUBLISH_INTERVAL"] = "0.5"
    server = Server(
        [
            str(BIN / "gunicorn"),
            "--workers=2",
            "--worker-class=uvicorn.workers.UvicornWorker",
            "--bind=127.0.0.1:0",
            "--config=gunicorn_conf.py",
            "--no-control-socket",
            "--graceful-timeout=5",
            "metrics_app:app",
        ],
        env,
    )
    try:
        port = server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        workers = {int(server.wait_for(r"Booting worker with pid: (\d+)").group(1)) for _ in "12"}
        base = f"http://127.0.0.1:{port}"

        # every worker's gauges, labelled with its pid, whichever worker serves the scrape
        eventually(lambda: pids_of(scrape(base)) == workers, "both workers' pids in a scrape")

        # counters add up over the workers: 20 misses and 10 hits, whoever served them
        for i in range(20):
            httpx.get(f"{base}/hit", params={"key": f"k{i}"}, timeout=30)
        for _ in range(10):
            httpx.get(f"{base}/hit", params={"key": "k19"}, timeout=30)

        def counted() -> float:
            families = scrape(base)
            lookups = total(families, "memscope_cache_hits", "memscope_cache_hits_total")
            lookups += total(families, "memscope_cache_misses", "memscope_cache_misses_total")
            return lookups if lookups == 30 else 0.0

        eventually(counted, "30 cache lookups summed over the workers")
        families = scrape(base)
        assert "pid" not in families["memscope_cache_hits"].samples[0].labels
        collections = families["memscope_gc_collections"].samples
        assert collections and all(s.labels.keys() == {"generation"} for s in collections)
        assert families["memscope_gc_pause_seconds"].type == "histogram"

        # a worker that dies takes its live gauges with it; its replacement appears
        dead = min(workers)
        os.kill(dead, signal.SIGKILL)
        replacement = int(server.wait_for(r"Booting worker with pid: (\d+)").group(1))
        expected = (workers - {dead}) | {replacement}
        eventually(lambda: pids_of(scrape(base)) == expected, "the dead worker's pid gone")
    finally:
        server.stop()
        log = server.drain()
    assert server.proc.returncode == 0, log
    assert "Traceback" not in log, log
