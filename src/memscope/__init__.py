"""memscope: see, bound and prove the memory of a Python service.

``import memscope`` is cheap: it starts nothing and imports no heavy module; the
collectors, the guard objects and the front ends load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._diff import Diff, compare
from ._errors import MemoryGrowthError
from ._registry import (
    Collector,
    CollectorUnavailable,
    register_collector,
    registered_collectors,
    unregister_collector,
)
from ._section import Change, Section
from ._snapshot import Snapshot, iter_load, load, save, snapshot
from .collectors.tracked import clear_caches, track, untrack

if TYPE_CHECKING:
    from .collectors.tracing import start_tracing, stop_tracing
    from .guard.cache import BoundedCache
    from .guard.release import release_memory
    from .guard.sse import SSEBuffer
    from .monitor import Monitor

__version__ = "0.1.0"

__all__ = [
    "BoundedCache",
    "Change",
    "Collector",
    "CollectorUnavailable",
    "Diff",
    "MemoryGrowthError",
    "Monitor",
    "SSEBuffer",
    "Section",
    "Snapshot",
    "__version__",
    "clear_caches",
    "compare",
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

# names whose modules load on first use, so that importing memscope stays fast
_LAZY = {
    "BoundedCache": "memscope.guard.cache",
    "SSEBuffer": "memscope.guard.sse",
    "release_memory": "memscope.guard.release",
    "start_tracing": "memscope.collectors.tracing",
    "stop_tracing": "memscope.collectors.tracing",
    "Monitor": "memscope.monitor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memscope' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
