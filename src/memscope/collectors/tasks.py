"""The ``tasks`` collector: asyncio tasks of every event loop in the process, any thread.

How tasks are found (without importing asyncio) is told in ``memscope._base.aio``: loops
in other threads are covered, and so are finished tasks something still references.
If the program has not imported asyncio, there are no tasks and the section says so.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from .._base.aio import live_tasks
from .._base.section import Section
from .._base.validate import check_int

_MAX_TOP = 1000


class _Modules:
    """Module names by source file, built once per collection and only if needed."""

    def __init__(self) -> None:
        self._by_file: dict[str, str] | None = None

    def of_file(self, filename: str) -> str | None:
        if self._by_file is None:
            self._by_file = {}
            for name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None)
                if isinstance(path, str) and isinstance(name, str):
                    self._by_file.setdefault(path, name)
        return self._by_file.get(filename)


def _coroutine_name(task: Any, modules: _Modules) -> str:
    """``module.qualname`` of the task's coroutine (the qualname alone if no module is known).

    A running or suspended coroutine names its module through its frame's globals; a
    finished one has no frame, so its code's file is looked up among the loaded modules:
    both give the same name, and a task's row stays the same row when it finishes.
    """
    coro = task.get_coro()
    if coro is None:  # eager tasks that finished at creation may have dropped it
        return "<none>"
    name = getattr(coro, "__qualname__", None)
    if not isinstance(name, str):
        return type(coro).__qualname__
    module: object = None
    frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    if frame is not None:
        module = frame.f_globals.get("__name__")
    else:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        filename = getattr(code, "co_filename", None)
        if isinstance(filename, str):
            module = modules.of_file(filename)
    return f"{module}.{name}" if isinstance(module, str) and module else name


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
        self.top = check_int("top", top, low=1, high=_MAX_TOP)

    def collect(self) -> dict[str, Any]:
        """Count live tasks by state and coroutine."""
        imported = "asyncio" in sys.modules
        tasks = live_tasks() if imported else []
        pending = done = unawaited = 0
        loops: set[int] = set()
        by_name: dict[str, list[int]] = {}
        modules = _Modules()
        for task in tasks:
            try:
                is_done = task.done()
                name = _coroutine_name(task, modules)
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
