"""memscope: see, bound and prove the memory of a Python service.

``import memscope`` is cheap: it starts nothing and imports none of memscope's modules;
each public name loads its module the first time it is used (see docs/architecture.md).
"""

from __future__ import annotations

from ._base.lazy import lazy_exports as _lazy_exports

# not from typing: importing typing costs a fresh interpreter ~10 ms (type checkers know
# the name TYPE_CHECKING whatever its origin)
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ._base.collector import Collector, CollectorUnavailable
    from ._base.errors import MemoryGrowthError
    from ._base.section import Change, Section
    from ._base.tracking import clear_caches, track, untrack
    from ._diff import Diff, compare
    from ._findings import Finding
    from ._registry import register_collector, registered_collectors, unregister_collector
    from ._snapshot import Snapshot, iter_load, load, save, snapshot
    from .cli._console import interactive
    from .collectors.tracing import start_tracing, stop_tracing
    from .guard.cache import BoundedCache
    from .guard.release import release_memory
    from .guard.sse import SSEBuffer
    from .monitor import Monitor
    from .monitor._alerts import Alert
    from .monitor._trends import Trend
    from .why import Explanation, LeakReport, explain, find_leaks

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "BoundedCache",
    "Change",
    "Collector",
    "CollectorUnavailable",
    "Diff",
    "Explanation",
    "Finding",
    "LeakReport",
    "MemoryGrowthError",
    "Monitor",
    "SSEBuffer",
    "Section",
    "Snapshot",
    "Trend",
    "__version__",
    "clear_caches",
    "compare",
    "explain",
    "find_leaks",
    "interactive",
    "iter_load",
    "load",
    "register_collector",
    "registered_collectors",
    "release_memory",
    "save",
    "snapshot",
    "start_tracing",
    "stop_tracing",
    "track",
    "unregister_collector",
    "untrack",
]

# public name -> the module that defines it, loaded on first use
_LAZY = {
    "Alert": "memscope.monitor._alerts",
    "BoundedCache": "memscope.guard.cache",
    "Change": "memscope._base.section",
    "Collector": "memscope._base.collector",
    "CollectorUnavailable": "memscope._base.collector",
    "Diff": "memscope._diff",
    "Explanation": "memscope.why._explain",
    "Finding": "memscope._findings",
    "LeakReport": "memscope.why._leak_report",
    "MemoryGrowthError": "memscope._base.errors",
    "Monitor": "memscope.monitor",
    "SSEBuffer": "memscope.guard.sse",
    "Section": "memscope._base.section",
    "Snapshot": "memscope._snapshot",
    "Trend": "memscope.monitor._trends",
    "clear_caches": "memscope._base.tracking",
    "compare": "memscope._diff",
    "explain": "memscope.why._explain",
    "find_leaks": "memscope.why._leaks",
    "interactive": "memscope.cli._console",
    "iter_load": "memscope._snapshot",
    "load": "memscope._snapshot",
    "register_collector": "memscope._registry",
    "registered_collectors": "memscope._registry",
    "release_memory": "memscope.guard.release",
    "save": "memscope._snapshot",
    "snapshot": "memscope._snapshot",
    "start_tracing": "memscope.collectors.tracing",
    "stop_tracing": "memscope.collectors.tracing",
    "track": "memscope._base.tracking",
    "unregister_collector": "memscope._registry",
    "untrack": "memscope._base.tracking",
}


__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
