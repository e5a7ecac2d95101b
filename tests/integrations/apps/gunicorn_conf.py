"""gunicorn settings for memscope's per-worker metrics: a dead worker's live gauges go."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """Drop the exited worker's ``liveall`` gauge files (its counters keep counting)."""
    multiprocess.mark_process_dead(worker.pid)
