"""MultiprocessPublisher in a fresh interpreter with PROMETHEUS_MULTIPROC_DIR set.

prometheus_client picks its multiprocess value class when it is imported, so every case
runs in its own interpreter; the files it writes are read back with MultiProcessCollector
and prometheus_client's parser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PRELUDE = """
import gc, json, os, sys
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from memscope.guard import BoundedCache
from memscope.integrations.prometheus import (
    MultiprocessPublisher, render_metrics, start_multiprocess,
)

def scrape():
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            key = s.name + json.dumps(dict(sorted(s.labels.items())))
            out[key] = s.value
    return out

def value(scraped, metric, **labels):
    return scraped.get(metric + json.dumps(dict(sorted(labels.items()))))
"""


def run(tmp_path: Path, body: str) -> dict[str, Any]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory))
    code = PRELUDE + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_counters_are_not_counted_twice_and_gone_series_read_zero(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        from prometheus_client import Counter
        Counter("app_requests", "the service's own", registry=None).inc()
        cache = BoundedCache(maxsize=2, name="mp-cache")
        cache["a"] = 1
        cache.get("a"); cache.get("a"); cache.get("b")
        publisher = start_multiprocess(interval=60.0)
        publisher.publish()
        publisher.publish()  # nothing new: nothing added
        first = scrape()
        cache.get("a")
        body, content_type = render_metrics()  # publishes through the same publisher
        second = scrape()
        del cache
        gc.collect()
        publisher.publish()
        third = scrape()
        try:
            MultiprocessPublisher()
            twice = "no error"
        except RuntimeError as exc:
            twice = str(exc)
        pid = str(os.getpid())
        print(json.dumps({
            "hits": [value(s, "memscope_cache_hits_total", cache="mp-cache")
                     for s in (first, second)],
            "misses": value(first, "memscope_cache_misses_total", cache="mp-cache"),
            "length": [value(s, "memscope_tracked_length", name="mp-cache", pid=pid)
                       for s in (first, third)],
            "anon": value(first, "memscope_rss_part_bytes", part="anon", pid=pid),
            "rendered": "memscope_cache_hits_total" in body.decode(),
            "app_in_files": value(second, "app_requests_total"),
            "app_rendered": "app_requests" in body.decode(),
            "content_type": content_type,
            "monitor": [k for k in first if k.startswith("memscope_monitor")],
            "twice": twice,
            "running": publisher.running,
        }))
        """,
    )
    assert result["hits"] == [2.0, 3.0]
    assert result["misses"] == 1.0
    assert result["length"] == [1.0, 0.0]  # the cache went: its series reads 0
    assert result["anon"] > 1 << 20
    assert result["rendered"] and result["content_type"].startswith("text/plain")
    # render_metrics() serves memscope's families; the service's own are its to serve
    assert (result["app_in_files"], result["app_rendered"]) == (1.0, False)
    assert result["monitor"] == []  # no monitor: its families stay absent
    assert "two would count every counter twice" in result["twice"]
    assert result["running"] is True


def test_a_forked_child_publishes_its_own_series_and_counts_from_the_fork(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        cache = BoundedCache(maxsize=8, name="mp-fork")
        cache["a"] = 1
        cache.get("a")
        publisher = start_multiprocess(interval=60.0)
        child = os.fork()
        if child == 0:
            cache.get("a"); cache.get("a")  # two hits of the child's own
            again = start_multiprocess()     # its thread did not survive the fork: restarted
            again.publish()
            os._exit(0 if again is publisher and again.running else 3)
        _, status = os.waitpid(child, 0)
        scraped = scrape()
        pids = sorted({k.split('"pid": "')[1].split('"')[0]
                       for k in scraped if k.startswith("memscope_rss_part_bytes")})
        print(json.dumps({
            "status": status,
            "pids": pids,
            "expected": sorted([str(os.getpid()), str(child)]),
            "hits": value(scraped, "memscope_cache_hits_total", cache="mp-fork"),
        }))
        """,
    )
    assert result["status"] == 0
    assert result["pids"] == result["expected"]
    assert result["hits"] == 3.0  # the parent's one, and the child's two: none twice
