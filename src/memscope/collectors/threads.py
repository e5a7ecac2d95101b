"""The ``threads`` collector: the Python threads alive in this process.

It lists what :func:`threading.enumerate` knows: threads started by ``threading`` and
foreign threads that called into it. Native threads that never touched ``threading``
(some C extensions' pools) are not in it; the ``process`` section's ``num_threads``
counts every OS thread, so a gap between the two points at them.
"""

from __future__ import annotations

import threading
from typing import Any

from .._section import Section

_MAX_ROWS = 100_000


class ThreadsSection(Section):
    """Thread count, daemon count and one row per thread (bounded)."""

    name = "threads"

    def summary_lines(self, top: int = 10) -> list[str]:
        """Counts, then the thread names grouped."""
        count = self.get("count", 0)
        lines = [f"{count} threads ({self.get('daemon', 0)} daemon)"]
        names: dict[str, int] = {}
        for row in self.get("threads") or []:
            names[str(row.get("name"))] = names.get(str(row.get("name")), 0) + 1
        shown = list(names.items())[: max(0, min(top, 5) * 4)]
        if shown:
            lines.append(", ".join(n if k == 1 else f"{n} x{k}" for n, k in shown))
        if len(self.get("threads") or []) < count:
            lines.append(f"(rows cut at {len(self.get('threads') or [])} of {count})")
        return lines


class ThreadsCollector:
    """Python threads: count, daemon count, rows of name/ident/daemon/alive/native_id.

    ``max_rows`` bounds the rows (counts cover every thread). Thread-safe.
    """

    name = "threads"
    cost = "cheap"
    section_type = ThreadsSection

    def __init__(self, max_rows: int = 100) -> None:
        if not isinstance(max_rows, int) or isinstance(max_rows, bool):
            raise TypeError(f"max_rows must be an int, got {type(max_rows).__name__}")
        if not 0 <= max_rows <= _MAX_ROWS:
            raise ValueError(f"max_rows must be between 0 and {_MAX_ROWS}, got {max_rows}")
        self.max_rows = max_rows

    def collect(self) -> dict[str, Any]:
        """Count the live threads and describe the first ``max_rows``."""
        threads = threading.enumerate()
        daemon = 0
        rows: list[dict[str, Any]] = []
        for thread in threads:
            is_daemon = thread.daemon
            daemon += is_daemon
            if len(rows) < self.max_rows:
                rows.append(
                    {
                        "name": thread.name,
                        "ident": thread.ident,
                        "daemon": is_daemon,
                        "alive": thread.is_alive(),
                        "native_id": getattr(thread, "native_id", None),
                    }
                )
        return {"count": len(threads), "daemon": daemon, "threads": rows}
