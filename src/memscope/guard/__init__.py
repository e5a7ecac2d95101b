"""Guard primitives that keep a service's memory bounded (each loads on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import BoundedCache
    from .cache_decorator import bounded_cache
    from .keyed_locks import AsyncKeyedLocks, KeyedLocks
    from .memory_guard import MemoryGuard, running_guards
    from .release import release_memory, release_memory_async
    from .sampling import Reservoir, Samples, sample, sample_by
    from .sse import Event, SSEBuffer, SSEOverflowError, aiter_sse, iter_sse
    from .summary import summarize
    from .task_tracker import TaskLimitError, TaskTracker

__all__ = [
    "AsyncKeyedLocks",
    "BoundedCache",
    "Event",
    "KeyedLocks",
    "MemoryGuard",
    "Reservoir",
    "SSEBuffer",
    "SSEOverflowError",
    "Samples",
    "TaskLimitError",
    "TaskTracker",
    "aiter_sse",
    "bounded_cache",
    "iter_sse",
    "release_memory",
    "release_memory_async",
    "running_guards",
    "sample",
    "sample_by",
    "summarize",
]

_LAZY = {
    "BoundedCache": ".cache",
    "bounded_cache": ".cache_decorator",
    "Event": ".sse",
    "SSEBuffer": ".sse",
    "SSEOverflowError": ".sse",
    "aiter_sse": ".sse",
    "iter_sse": ".sse",
    "release_memory": ".release",
    "release_memory_async": ".release",
    "MemoryGuard": ".memory_guard",
    "running_guards": ".memory_guard",
    "TaskTracker": ".task_tracker",
    "TaskLimitError": ".task_tracker",
    "KeyedLocks": ".keyed_locks",
    "AsyncKeyedLocks": ".keyed_locks",
    "summarize": ".summary",
    "sample": ".sampling",
    "sample_by": ".sampling",
    "Reservoir": ".sampling",
    "Samples": ".sampling",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memscope.guard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
