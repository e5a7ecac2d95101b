"""The ``tasks`` collector: asyncio tasks of every event loop in the process, any thread.

How tasks are found: asyncio registers every task it creates in a module-level weak set
(``asyncio.tasks._all_tasks`` up to Python 3.11, ``_scheduled_tasks`` plus
``_eager_tasks`` from 3.12). memscope reads that set directly instead of calling
``asyncio.all_tasks()``, because that function only sees the calling thread's running
loop and drops finished tasks. So loops running in other threads are covered, and so are
finished tasks that something still references (a classic leak: a set of background
tasks that is never pruned). From Python 3.14, tasks of the C implementation live in
per-thread lists instead; memscope then adds ``asyncio.all_tasks(loop)`` for every loop
it knows of (loops of the tasks in the sets, and the calling thread's running loop).

asyncio is never imported by this module: if the program has not imported it, there
are no tasks and the section says so.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from .._section import Section

_MAX_TOP = 1000
_RETRIES = 100


def _coroutine_name(task: Any) -> str:
    coro = task.get_coro()
    if coro is None:  # eager tasks that finished at creation may have dropped it
        return "<none>"
    name = getattr(coro, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(coro).__qualname__


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


def _unretrieved(task: Any) -> bool:
    """Done with an exception nobody retrieved, read without retrieving it.

    ``task.exception()`` would mark it retrieved (and silence asyncio's "Task exception
    was never retrieved" log), so the flag asyncio itself uses for that log is read.
    """
    return bool(getattr(task, "_log_traceback", False))


class TasksSection(Section):
    """Task counts by state and by coroutine; rows diff by coroutine name."""

    name = "tasks"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "by_coroutine": ("coroutine", ("count", "done")),
    }

    def summary_lines(self, top: int = 10) -> list[str]:
        """Totals, then the coroutines with the most tasks."""
        count = self.get("count", 0)
        if not self.get("asyncio_imported", True):
            return ["asyncio not imported: no tasks"]
        lines = [
            f"{count:,} tasks in {self.get('loops', 0)} loop(s): {self.get('pending', 0):,} "
            f"pending, {self.get('done', 0):,} done but still referenced "
            f"({self.get('done_unawaited', 0):,} with an exception never retrieved)"
        ]
        for row in (self.get("by_coroutine") or [])[: max(0, min(top, 5))]:
            done = row.get("done", 0)
            lines.append(
                f"{row.get('count', 0):>6,}  {row.get('coroutine')}"
                + (f" ({done:,} done)" if done else "")
            )
        return lines


class TasksCollector:
    """asyncio tasks of all loops in all threads: counts, by coroutine, unretrieved failures.

    ``top`` bounds the by-coroutine rows (1..1000). Thread-safe; imports nothing.
    """

    name = "tasks"
    cost = "cheap"
    section_type = TasksSection

    def __init__(self, top: int = 20) -> None:
        if not isinstance(top, int) or isinstance(top, bool):
            raise TypeError(f"top must be an int, got {type(top).__name__}")
        if not 1 <= top <= _MAX_TOP:
            raise ValueError(f"top must be between 1 and {_MAX_TOP}, got {top}")
        self.top = top

    def collect(self) -> dict[str, Any]:
        """Count live tasks by state and coroutine."""
        imported = "asyncio" in sys.modules
        tasks = live_tasks() if imported else []
        pending = done = unawaited = 0
        loops: set[int] = set()
        by_name: dict[str, list[int]] = {}
        for task in tasks:
            try:
                is_done = task.done()
                name = _coroutine_name(task)
                loops.add(id(task.get_loop()))
                failed = is_done and _unretrieved(task)
            except Exception:  # a foreign Task subclass with odd internals: skip it
                continue
            entry = by_name.setdefault(name, [0, 0])
            entry[0] += 1
            if is_done:
                done += 1
                entry[1] += 1
                unawaited += int(failed)
            else:
                pending += 1
        ranked = sorted(by_name.items(), key=lambda item: (-item[1][0], item[0]))
        return {
            "asyncio_imported": imported,
            "count": pending + done,
            "pending": pending,
            "done": done,
            "done_unawaited": unawaited,
            "loops": len(loops),
            "coroutines": len(by_name),
            "by_coroutine": [
                {"coroutine": name, "count": n, "done": d} for name, (n, d) in ranked[: self.top]
            ],
        }
