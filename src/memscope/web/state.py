"""What one debug app holds between requests: its monitor, snapshot store and scan gate."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._base.tracking import track
from .security import ScanGate
from .store import SnapshotStore

if TYPE_CHECKING:
    from ..monitor import Monitor

__all__ = ["WORKERS", "DebugState", "WorkersBusy", "make_state"]

WORKERS = 4  # threads one debug app may hold at once: the host's pool must stay free


class WorkersBusy(Exception):
    """Every worker thread this app may use is busy (answered with a 429)."""

    def __init__(self, workers: int) -> None:
        super().__init__(f"busy: {workers} debug app requests are running; retry later")


@dataclass
class DebugState:
    """What one debug app holds: its settings, monitor, snapshot store and scan gate."""

    monitor: Monitor
    own_monitor: bool
    expose_reprs: bool
    gate: ScanGate
    store: SnapshotStore
    started: float = field(default_factory=time.time)
    workers: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(WORKERS)
    )

    def ensure_monitor(self) -> None:
        """Start the app's own monitor on first use (a monitor passed in is left as it is)."""
        if self.own_monitor and not self.monitor.running:
            self.monitor.start()


def make_state(
    monitor: Monitor | None, expose_reprs: bool, scan_interval: float, max_snapshots: int
) -> DebugState:
    """The state of a new app: the given monitor or its own (started on first use)."""
    from ..monitor import Monitor

    own = monitor is None
    if monitor is None:
        # alerts at 80% of the memory it may use: the cgroup limit, else the RAM
        monitor = Monitor(
            interval=5.0, history=720, label="debug_app", thresholds={"rss_bytes": "80%"}
        )
    elif not isinstance(monitor, Monitor):
        raise TypeError(f"monitor must be a memscope.Monitor or None, got {type(monitor).__name__}")
    store = SnapshotStore(max_snapshots)
    track(store, name="debug_app.snapshots")
    return DebugState(monitor, own, expose_reprs, ScanGate(scan_interval), store)
