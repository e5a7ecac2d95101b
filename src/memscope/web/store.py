"""The debug app's snapshots: a bounded store, oldest dropped first."""

from __future__ import annotations

import collections
import threading
from typing import Any

from .._base.validate import check_int
from .._snapshot import Snapshot

__all__ = ["SnapshotStore"]


class SnapshotStore:
    """At most ``maxsize`` snapshots by id (1, 2, ...); adding one past the bound drops the
    oldest. Thread-safe."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize: int = check_int("max_snapshots", maxsize, low=1, high=1000)
        self._items: collections.OrderedDict[int, Snapshot] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._next = 1
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, snap: Snapshot) -> tuple[int, list[int]]:
        """Store ``snap``; returns its id and the ids dropped to make room."""
        with self._lock:
            ident = self._next
            self._next += 1
            self._items[ident] = snap
            dropped: list[int] = []
            while len(self._items) > self.maxsize:
                old, _ = self._items.popitem(last=False)
                dropped.append(old)
            self.dropped_total += len(dropped)
            return ident, dropped

    def get(self, ident: int) -> Snapshot | None:
        """The snapshot of that id, or None when it was never stored or was dropped."""
        with self._lock:
            return self._items.get(ident)

    def listing(self) -> list[dict[str, Any]]:
        """A short row per kept snapshot, oldest first."""
        with self._lock:
            items = list(self._items.items())
        return [
            {
                "id": ident,
                "label": snap.label,
                "timestamp": snap.timestamp,
                "deep": "census" in snap,
                "sections": snap.collectors,
            }
            for ident, snap in items
        ]

    def memscope_stats(self) -> dict[str, Any]:
        """Counters for the tracked section."""
        return {
            "kept": len(self._items),
            "maxsize": self.maxsize,
            "dropped_total": self.dropped_total,
        }
