"""MemscopeCollector in one process: names, values from real sources, bounds, containment."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
import tracemalloc
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

import memscope
from memscope.guard import BoundedCache, SSEBuffer
from memscope.integrations.prometheus import (
    MemscopeCollector,
    metric_names,
    render_metrics,
)
from memscope.integrations.prometheus._gcpause import BOUNDS, PauseHistogram

MiB = 1 << 20


class Holder:
    """Owns plain lists so that track() can hold them weakly through it."""


def scrape(collector: MemscopeCollector) -> dict[str, Any]:
    """name -> parsed family, through the text format and prometheus_client's parser."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def values(family: Any, sample_name: str | None = None) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if sample_name is None or s.name == sample_name
    }


def test_names_follow_the_conventions_and_never_clash_with_prometheus_client() -> None:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    monitor = memscope.Monitor(interval=60.0, history=2, label="prom-names")
    registry.register(MemscopeCollector(monitor, gc_counts=True))  # a clash would raise here
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    ours = [f for f in families if f.name.startswith("memscope_")]
    theirs = {f.name for f in families} - {f.name for f in ours}
    assert {"process_resident_memory_bytes", "python_gc_collections"} <= theirs
    assert not any(n.startswith("memscope_") for n in theirs)
    assert {f.name for f in ours} == {n.removesuffix("_total") for n in metric_names()}
    for family in ours:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        assert not family.name.endswith("_total")  # the parser strips it from counters only
    names = metric_names()
    assert "memscope_cache_hits_total" in names and "memscope_gc_pause_seconds" in names
    assert all(re.fullmatch(r"memscope_[a-z0-9_]+", n) for n in names)
    # sizes are in bytes and durations in seconds, never KiB or ms
    assert not [n for n in names if re.search(r"_(kb|kib|mb|mib|ms|milliseconds)(_|$)", n)]


def test_default_collector_leaves_gc_counts_to_gccollector_and_needs_a_monitor_for_its() -> None:
    families = scrape(MemscopeCollector())
    assert "memscope_gc_collections" not in families
    assert not [name for name in families if name.startswith("memscope_monitor_")]
    assert "memscope_gc_pause_seconds" in families
    before = sum(s["collections"] for s in gc.get_stats())
    with_counts = scrape(MemscopeCollector(gc_counts=True))
    collections = values(with_counts["memscope_gc_collections"])
    after = sum(s["collections"] for s in gc.get_stats())  # the scrape itself may collect
    assert before <= sum(collections.values()) <= after


def test_rss_parts_add_up_to_the_kernel_figure() -> None:
    families = scrape(MemscopeCollector())
    parts = {dict(k)["part"]: v for k, v in values(families["memscope_rss_part_bytes"]).items()}
    assert set(parts) == {"anon", "file", "shmem"}
    assert parts["anon"] > 0 and parts["file"] > 0
    anon = {dict(k)["part"]: v for k, v in values(families["memscope_anon_part_bytes"]).items()}
    assert {"python_arenas", "unexplained"} <= set(anon)
    assert families["memscope_pymalloc_arenas"].samples[0].value >= 1
    used = families["memscope_pymalloc_used_bytes"].samples[0].value
    free = families["memscope_pymalloc_free_bytes"].samples[0].value
    arenas = families["memscope_pymalloc_arenas"].samples[0].value * (1 << 20)
    assert 0 < used < arenas and 0 <= free < arenas


def test_a_big_block_shows_in_the_anonymous_parts() -> None:
    collector = MemscopeCollector()
    # free memory an earlier test left resident would serve the block without new pages
    memscope.release_memory()
    before = values(scrape(collector)["memscope_rss_part_bytes"])
    block = b"\x01" * (48 * MiB)  # written, so resident
    after = values(scrape(collector)["memscope_rss_part_bytes"])
    assert after[(("part", "anon"),)] - before[(("part", "anon"),)] > 40 * MiB
    del block


def test_cache_and_sse_statistics_by_name_and_reason() -> None:
    cache: BoundedCache[int, bytes] = BoundedCache(maxsize=3, name="prom-models")
    for i in range(10):
        cache[i] = b"x"
    cache.get(9)
    cache.get(9)
    cache.get(123)
    buffer = SSEBuffer(16, on_overflow="skip", name="prom-upstream")
    buffer.feed(b"data: " + b"x" * 100 + b"\n\n")
    families = scrape(MemscopeCollector())
    cache_label = (("cache", "prom-models"),)
    assert values(families["memscope_cache_hits"], "memscope_cache_hits_total")[cache_label] == 2
    assert (
        values(families["memscope_cache_misses"], "memscope_cache_misses_total")[cache_label] == 1
    )
    evictions = values(families["memscope_cache_evictions"], "memscope_cache_evictions_total")
    assert evictions[(("cache", "prom-models"), ("reason", "size"))] == 7
    assert evictions[(("cache", "prom-models"), ("reason", "ttl"))] == 0
    overflows = values(families["memscope_sse_overflows"], "memscope_sse_overflows_total")
    assert overflows[(("buffer", "prom-upstream"),)] == buffer.overflows_total >= 1
    lengths = values(families["memscope_tracked_length"])
    assert lengths[(("name", "prom-models"),)] == 3


def test_label_values_are_capped_and_the_rest_folded_into_other() -> None:
    holder = Holder()
    holder.lists = [[0] * (i + 1) for i in range(40)]  # type: ignore[attr-defined]
    for i, items in enumerate(holder.lists):  # type: ignore[attr-defined]
        memscope.track(items, name=f"prom-list-{i:02d}", owner=holder)
    collector = MemscopeCollector(max_names=5)
    lengths = values(scrape(collector)["memscope_tracked_length"])
    names = {dict(k)["name"] for k in lengths}
    assert len(names) <= 6 and "other" in names
    ours = sum(i + 1 for i in range(40))
    assert sum(lengths.values()) >= ours  # nothing is lost, only folded
    # the largest get the slots, and keep them scrape after scrape
    again = values(scrape(collector)["memscope_tracked_length"])
    assert {dict(k)["name"] for k in again} == names
    del holder
    gc.collect()


def test_tasks_and_tracemalloc_are_read_live() -> None:
    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(stop.wait()) for _ in range(7)]
        await asyncio.sleep(0)
        families = scrape(MemscopeCollector())
        stop.set()
        await asyncio.gather(*tasks)
        return families

    families = asyncio.run(main())
    pending = values(families["memscope_asyncio_tasks"])[(("state", "pending"),)]
    assert pending >= 8  # the seven waiters and main()
    assert not families["memscope_tracemalloc_traced_bytes"].samples  # not tracing: absent
    tracemalloc.start()
    try:
        keep = [bytes(1000) for _ in range(2000)]
        traced = scrape(MemscopeCollector())["memscope_tracemalloc_traced_bytes"]
        assert traced.samples[0].value > 1_000_000
        del keep
    finally:
        tracemalloc.stop()


def test_gc_pauses_land_in_their_generation() -> None:
    collector = MemscopeCollector()
    before = values(
        scrape(collector)["memscope_gc_pause_seconds"], "memscope_gc_pause_seconds_count"
    )
    gc.collect()
    gc.collect()
    family = scrape(collector)["memscope_gc_pause_seconds"]
    after = values(family, "memscope_gc_pause_seconds_count")
    gen2 = (("generation", "2"),)
    assert after[gen2] - before[gen2] >= 2
    assert values(family, "memscope_gc_pause_seconds_sum")[gen2] > 0
    buckets = [
        s for s in family.samples if s.name.endswith("_bucket") and s.labels["generation"] == "2"
    ]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == after[gen2]  # cumulative, +Inf = count


def test_pause_histogram_buckets_with_an_injected_clock() -> None:
    now = [0.0]
    histogram = PauseHistogram(BOUNDS, clock=lambda: now[0])
    for generation, pause in ((0, 0.00005), (0, 0.0001), (1, 0.003), (2, 7.0)):
        now[0] = 0.0
        histogram("start", {"generation": generation})
        now[0] = pause
        histogram("stop", {"generation": generation, "collected": 0})
    counts, sums = histogram.read()
    assert counts[0][0] == 2  # 0.0001 is "le 0.0001": a pause equal to a bound is in it
    assert counts[1][BOUNDS.index(0.005)] == 1
    assert counts[2][-1] == 1  # past every bound: +Inf
    assert sums[2] == pytest.approx(7.0)
    histogram("stop", {"generation": 0})  # a stop without a start is ignored
    assert histogram.read()[0][0][0] == 2


def test_scrapes_during_collections_in_other_threads_never_block() -> None:
    collector = MemscopeCollector()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            junk = [[i] for i in range(2000)]
            junk.append(junk)  # type: ignore[arg-type]
            gc.collect(0)

    threads = [threading.Thread(target=churn, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    try:
        for _ in range(50):
            scrape(collector)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert time.monotonic() - started < 60
    assert not any(t.is_alive() for t in threads)


def test_a_failing_part_costs_its_samples_not_the_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    collector = MemscopeCollector()

    def broken() -> dict[str, Any]:
        raise MemoryError("simulated")

    monkeypatch.setattr(collector.readings._accounting, "collect", broken)
    families = scrape(collector)
    assert not families["memscope_rss_part_bytes"].samples
    assert families["memscope_tracked_objects"].samples  # the other parts still come
    errors = values(families["memscope_scrape_errors"], "memscope_scrape_errors_total")
    assert errors == {(("part", "accounting"),): 1.0}
    assert (
        values(scrape(collector)["memscope_scrape_errors"], "memscope_scrape_errors_total")[
            (("part", "accounting"),)
        ]
        == 2.0
    )


def test_monitor_counters_and_rss_trend() -> None:
    monitor = memscope.Monitor(interval=60.0, history=10, label="prom-test")
    grow = []
    for _ in range(4):
        grow.append(b"\x01" * (4 * MiB))  # written, so resident (a zeroed buffer may not be)
        monitor.take()
        time.sleep(0.05)
    families = scrape(MemscopeCollector(monitor))
    assert families["memscope_monitor_snapshots"].samples[0].value == 4
    assert families["memscope_monitor_alerts"].samples[0].value == 0
    growth = families["memscope_monitor_rss_growth_bytes_per_hour"].samples
    assert growth and growth[0].value > 0
    del grow


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="monitor"):
        MemscopeCollector("monitor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_names"):
        MemscopeCollector(max_names=0)
    with pytest.raises(TypeError, match="gc_counts"):
        MemscopeCollector(gc_counts=1)  # type: ignore[arg-type]


def test_render_metrics_outside_multiprocess_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    body, content_type = render_metrics()
    assert content_type.startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert "memscope_rss_part_bytes" in families
    assert all(name.startswith("memscope_") for name in families)
