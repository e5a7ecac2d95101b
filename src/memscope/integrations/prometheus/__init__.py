"""memscope's metrics for Prometheus (the ``prometheus`` extra: prometheus_client).

- :class:`MemscopeCollector`: a custom collector for a single process's registry.
- :class:`MultiprocessPublisher` / :func:`start_multiprocess`: per-worker metrics for
  prometheus_client's multiprocess mode (gunicorn, uvicorn workers), where custom
  collectors are not aggregated.
- :func:`render_metrics`: the body and content type of memscope's metrics, in whichever
  mode this process runs (what the web debug app's ``GET metrics`` serves).
- :func:`metric_names`: every exported name.

See docs/prometheus.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

try:
    import prometheus_client  # noqa: F401  (fails here, with the fix, rather than deep inside)
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise ImportError(
        "memscope.integrations.prometheus needs prometheus_client: "
        "pip install 'memscope[prometheus]'"
    ) from exc

from ._collector import MemscopeCollector
from ._families import metric_names
from ._multiprocess import MultiprocessPublisher, current_publisher, multiprocess_dir

if TYPE_CHECKING:
    from ...monitor import Monitor

__all__ = [
    "MemscopeCollector",
    "MultiprocessPublisher",
    "metric_names",
    "multiprocess_dir",
    "render_metrics",
    "start_multiprocess",
]

_lock = threading.Lock()
_single: tuple[object, MemscopeCollector] | None = None  # (registry, collector)


def start_multiprocess(
    monitor: Monitor | None = None, *, interval: float = 15.0, max_names: int = 50
) -> MultiprocessPublisher:
    """This worker's publisher, started (call it in each worker, after the fork).

    The first call makes it (the arguments count then); later calls return the same one,
    started again if it had stopped (in a forked child, its thread did not survive).
    """
    publisher = current_publisher(monitor, interval=interval, max_names=max_names)
    if not publisher.running:
        publisher.start()
    return publisher


class _MemscopeOnly:
    """The memscope families of another collector (the multiprocess files hold the app's too)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def collect(self) -> Iterator[Any]:
        for family in self._inner.collect():
            if family.name.startswith("memscope_"):
                yield family


def render_metrics() -> tuple[bytes, str]:
    """(body, content type) of memscope's metrics in the Prometheus text format.

    Outside multiprocess mode: one MemscopeCollector's scrape. With
    ``PROMETHEUS_MULTIPROC_DIR`` set: this worker publishes now (through its publisher,
    made but not started if :func:`start_multiprocess` was never called) and the multiprocess
    files are aggregated as prometheus_client does, every worker's series included (the
    memscope families only: the service's own metrics in those files are its to serve).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    global _single
    if multiprocess_dir() is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        current_publisher().publish()
        registry = CollectorRegistry()
        registry.register(_MemscopeOnly(MultiProcessCollector(None)))  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    with _lock:
        if _single is None:
            registry = CollectorRegistry()
            collector = MemscopeCollector()
            registry.register(collector)
            _single = (registry, collector)
        single_registry = _single[0]
    assert isinstance(single_registry, CollectorRegistry)
    return generate_latest(single_registry), CONTENT_TYPE_LATEST
