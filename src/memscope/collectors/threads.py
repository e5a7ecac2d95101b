"""The ``threads`` collector: the Python threads alive in this process.

It lists what :func:`threading.enumerate` knows: threads started by ``threading`` and
foreign threads that called into it. Native threads that never touched ``threading``
(some C extensions' pools) are not in it; the ``process`` section's ``num_threads``
counts every OS thread, so a gap between the two points at them.
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from .._base.section import Section
from .._base.validate import check_int

_MAX_ROWS = 100_000
_MAX_GROUPS = 20
_DIGITS = re.compile(r"\d+")


def name_pattern(name: str) -> str:
    """A thread name with its numbers replaced by N: ``ThreadPoolExecutor-0_3`` -> ``-N_N``."""
    return _DIGITS.sub("N", name)


class ThreadsSection(Section):
    """Thread count, daemon count and one row per thread (bounded)."""

    name = "threads"
    tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "by_name": ("name", ("count",)),
    }

    def summary_lines(self, top: int = 10) -> list[str]:
        """Counts, then the thread names grouped by pattern (a pool shows as one entry)."""
        count = self.get("count", 0)
        lines = [f"{count} threads ({self.get('daemon', 0)} daemon)"]
        groups = (self.get("by_name") or [])[: max(1, top)]
        if groups:
            text = ", ".join(
                g["name"] if g["count"] == 1 else f"{g['name']} x{g['count']}" for g in groups
            )
            lines.append(text if len(text) <= 200 else text[:197] + "...")
        if len(self.get("threads") or []) < count:
            lines.append(f"(rows cut at {len(self.get('threads') or [])} of {count})")
        return lines


class ThreadsCollector:
    """Python threads: count, daemon count, rows of name/ident/daemon/alive/native_id.

    ``max_rows`` bounds the rows (counts cover every thread); ``by_name`` groups threads
    whose names differ only in numbers (top 20). Thread-safe.
    """

    name = "threads"
    cost = "cheap"
    section_type = ThreadsSection

    def __init__(self, max_rows: int = 100) -> None:
        self.max_rows = check_int("max_rows", max_rows, low=0, high=_MAX_ROWS)

    def collect(self) -> dict[str, Any]:
        """Count the live threads and describe the first ``max_rows``."""
        threads = threading.enumerate()
        daemon = 0
        rows: list[dict[str, Any]] = []
        groups: dict[str, int] = {}
        for thread in threads:
            is_daemon = thread.daemon
            daemon += is_daemon
            pattern = name_pattern(thread.name)
            groups[pattern] = groups.get(pattern, 0) + 1
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
        ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
        return {
            "count": len(threads),
            "daemon": daemon,
            "threads": rows,
            "by_name": [{"name": n, "count": k} for n, k in ranked[:_MAX_GROUPS]],
        }
