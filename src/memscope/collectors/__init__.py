"""Built-in collectors, one module each; imported only when a snapshot first needs them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._base.collector import Collector

# collector name -> (module, class); modules load on the first snapshot, never at import
BUILTIN: dict[str, tuple[str, str]] = {
    "process": ("process", "ProcessCollector"),
    "gc": ("gcstats", "GCCollector"),
    "tracemalloc": ("tracing", "TracemallocCollector"),
    "census": ("census", "CensusCollector"),
    "containers": ("containers", "ContainersCollector"),
    "large_objects": ("large", "LargeObjectsCollector"),
    "tracked": ("tracked", "TrackedCollector"),
    "tasks": ("tasks", "TasksCollector"),
    "threads": ("threads", "ThreadsCollector"),
    "allocator": ("allocator", "AllocatorCollector"),
    "accounting": ("accounting", "AccountingCollector"),
}


class _Broken:
    """Stands in for a built-in collector whose module failed to import."""

    cost = "cheap"

    def __init__(self, name: str, error: str) -> None:
        self.name = name
        self.error = error

    def collect(self) -> dict[str, Any]:
        raise RuntimeError(self.error)


def builtin_collectors() -> list[Collector]:
    """Instances of every built-in collector, in report order."""
    out: list[Any] = []
    for name, (module, cls) in BUILTIN.items():
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
            out.append(getattr(mod, cls)())
        except Exception as exc:  # contained: the snapshot records the error instead
            out.append(_Broken(name, f"could not load: {type(exc).__name__}: {exc}"))
    return out
