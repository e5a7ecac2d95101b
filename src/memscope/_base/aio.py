"""asyncio tasks of every loop in every thread, read without importing asyncio.

asyncio registers every task it creates in a module-level weak set
(``asyncio.tasks._all_tasks`` up to Python 3.11, ``_scheduled_tasks`` plus
``_eager_tasks`` from 3.12). Reading that set directly, rather than calling
``asyncio.all_tasks()``, covers loops running in other threads and finished tasks that
something still references (a set of background tasks never pruned). From Python 3.14,
tasks of the C implementation live in per-thread lists instead; then
``asyncio.all_tasks(loop)`` is added for every loop known (loops of the tasks in the
sets, and the calling thread's running loop).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["live_tasks", "pending_tasks"]

_RETRIES = 100


def _snapshot_set(source: Any) -> list[Any]:
    # another thread may add a task while we copy: retry like asyncio.all_tasks() does
    for _ in range(_RETRIES):
        try:
            return list(source)
        except RuntimeError:
            continue
    return []


def live_tasks() -> list[Any]:
    """Every asyncio task still alive in this process, pending or done, from every loop."""
    asyncio = sys.modules.get("asyncio")
    tasks_mod = sys.modules.get("asyncio.tasks")
    if asyncio is None or tasks_mod is None:
        return []
    found: dict[int, Any] = {}
    for attr in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):
        source = getattr(tasks_mod, attr, None)
        if source is not None:
            for task in _snapshot_set(source):
                found[id(task)] = task
    if sys.version_info >= (3, 14):  # pragma: no cover - C tasks left the weak set in 3.14
        loops = {id(t.get_loop()): t.get_loop() for t in found.values()}
        running = asyncio.events._get_running_loop()
        if running is not None:
            loops[id(running)] = running
        for loop in loops.values():
            try:
                for task in asyncio.all_tasks(loop):
                    found[id(task)] = task
            except Exception:
                continue
    return list(found.values())


def pending_tasks(loop: Any = None) -> int:
    """How many tasks are not done yet: of ``loop``, or of every loop in the process."""
    if loop is not None:
        asyncio = sys.modules.get("asyncio")
        if asyncio is None:
            return 0
        return sum(1 for t in asyncio.all_tasks(loop) if not t.done())
    return sum(1 for t in live_tasks() if not t.done())
