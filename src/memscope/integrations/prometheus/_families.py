"""The memscope metric families: names, types, help and labels, in one table.

Names follow Prometheus conventions: a ``memscope_`` prefix, base units (bytes,
seconds), ``_total`` on counters (prometheus_client adds it: the table names counters
without it). Nothing here repeats ProcessCollector (``process_*``) or GCCollector
(``python_gc_*``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["FAMILIES", "GC_COUNT_FAMILIES", "Family", "metric_names"]

Kind = Literal["gauge", "counter", "histogram"]


class Family(NamedTuple):
    """One metric family: its kind, help text and label names."""

    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


FAMILIES: dict[str, Family] = {
    "memscope_rss_part_bytes": Family(
        "gauge", "Resident memory by kind (anon, file, shmem; they sum to RSS).", ("part",)
    ),
    "memscope_anon_part_bytes": Family(
        "gauge",
        "Anonymous resident memory by holder (python_arenas, malloc_in_use, malloc_free, "
        "unexplained).",
        ("part",),
    ),
    "memscope_malloc_mmap_bytes": Family("gauge", "Bytes in blocks malloc mmap'd one each."),
    "memscope_malloc_trimmable_bytes": Family(
        "gauge", "Free bytes at the top of malloc's heap that malloc_trim can return."
    ),
    "memscope_pymalloc_arenas": Family("gauge", "pymalloc arenas allocated now."),
    "memscope_pymalloc_used_bytes": Family(
        "gauge", "Bytes of live small objects in pymalloc's arenas."
    ),
    "memscope_pymalloc_free_bytes": Family(
        "gauge", "Free bytes in pymalloc's arenas (a high share: arenas pinned by survivors)."
    ),
    "memscope_gc_pause_seconds": Family(
        "histogram",
        "GC pause times by generation, since memscope's callback was installed.",
        ("generation",),
    ),
    "memscope_gc_collections": Family(
        "counter", "GC collections by generation (gc.get_stats).", ("generation",)
    ),
    "memscope_gc_collected_objects": Family(
        "counter", "Objects the GC collected, by generation.", ("generation",)
    ),
    "memscope_gc_uncollectable_objects": Family(
        "counter", "Objects the GC found uncollectable, by generation.", ("generation",)
    ),
    "memscope_tracked_objects": Family("gauge", "Objects registered with memscope.track()."),
    "memscope_tracked_size_bytes": Family(
        "gauge", "Size of each tracked object (sampled estimate for large containers).", ("name",)
    ),
    "memscope_tracked_length": Family("gauge", "len() of each tracked object.", ("name",)),
    "memscope_cache_hits": Family("counter", "BoundedCache hits.", ("cache",)),
    "memscope_cache_misses": Family("counter", "BoundedCache misses.", ("cache",)),
    "memscope_cache_evictions": Family(
        "counter", "BoundedCache evictions by reason (size, bytes, ttl).", ("cache", "reason")
    ),
    "memscope_sse_overflows": Family(
        "counter", "SSEBuffer events or lines over their bound.", ("buffer",)
    ),
    "memscope_asyncio_tasks": Family(
        "gauge", "Live asyncio tasks of every loop, by state (pending, done).", ("state",)
    ),
    "memscope_tracemalloc_traced_bytes": Family(
        "gauge", "Bytes tracemalloc traces now (absent while it is not tracing)."
    ),
    "memscope_tracemalloc_peak_bytes": Family(
        "gauge", "Peak bytes tracemalloc traced (absent while it is not tracing)."
    ),
    "memscope_monitor_snapshots": Family("counter", "Snapshots the memscope Monitor took."),
    "memscope_monitor_alerts": Family("counter", "Alerts the memscope Monitor raised."),
    "memscope_monitor_errors": Family("counter", "Monitor snapshots or hooks that failed."),
    "memscope_monitor_rss_growth_bytes_per_hour": Family(
        "gauge", "RSS growth over the Monitor's kept history (least-squares slope; may be < 0)."
    ),
    "memscope_monitor_rss_growth_steady": Family(
        "gauge", "1 when that RSS growth is steady by the Monitor's rule, else 0."
    ),
    "memscope_scrape_errors": Family(
        "counter",
        "Parts of memscope's metrics that failed (the rest were still exported).",
        ("part",),
    ),
}

# what GCCollector's python_gc_* already give a single process
GC_COUNT_FAMILIES = frozenset(
    {
        "memscope_gc_collections",
        "memscope_gc_collected_objects",
        "memscope_gc_uncollectable_objects",
    }
)


def metric_names() -> list[str]:
    """Every exported metric name as it appears in a scrape (counters with ``_total``)."""
    return [f"{n}_total" if f.kind == "counter" else n for n, f in FAMILIES.items()]
