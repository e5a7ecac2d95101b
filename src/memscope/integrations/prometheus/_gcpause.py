"""GC pause times as a histogram, measured by a gc callback that takes no lock.

prometheus_client dropped its own GC-duration metric because observing a Histogram
inside a gc callback takes the metric's lock: a collection triggered while that thread
already held it deadlocked. This callback only does arithmetic on preallocated lists
(no lock, no gc-tracked allocation), and readers get a consistent copy through a
sequence number instead: the callback makes it odd before it writes and even after, and
a reader retries while it is odd or changed under it (a seqlock). Collections never
overlap, so there is one writer at a time.
"""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["BOUNDS", "PauseHistogram", "install", "pause_histogram"]

GENERATIONS = 3
# seconds: a young collection takes tens of microseconds, a full one on a big heap seconds
BOUNDS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
_READ_RETRIES = 1000


class PauseHistogram:
    """Pause counts per generation and bucket, and their sums; fed by gc.callbacks."""

    def __init__(
        self, bounds: Sequence[float] = BOUNDS, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.clock = clock
        self.seq = 0
        # one count per bound plus +Inf, not cumulative; one sum per generation
        self.counts = [[0] * (len(self.bounds) + 1) for _ in range(GENERATIONS)]
        self.sums = [0.0] * GENERATIONS
        self._started: float | None = None
        self._generation = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # runs inside every collection: tiny, no lock, and it never raises (an exception
        # here would be reported as unraisable on every collection)
        try:
            if phase == "start":
                self._generation = min(max(int(info["generation"]), 0), GENERATIONS - 1)
                self._started = self.clock()
            elif phase == "stop" and self._started is not None:
                elapsed = self.clock() - self._started
                self._started = None
                g = self._generation
                i = bisect.bisect_left(self.bounds, elapsed)  # le: a pause equal to a bound is in
                self.seq += 1
                self.counts[g][i] += 1
                self.sums[g] += elapsed
                self.seq += 1
        except Exception:  # pragma: no cover - defensive: arithmetic on our own numbers
            self._started = None

    def read(self) -> tuple[list[list[int]], list[float]]:
        """(counts per generation and bucket, sums per generation): a consistent copy."""
        counts: list[list[int]] = []
        sums: list[float] = []
        for _ in range(_READ_RETRIES):
            before = self.seq
            counts = [list(row) for row in self.counts]
            sums = list(self.sums)
            if before % 2 == 0 and self.seq == before:
                break
            time.sleep(0)  # let the collecting thread finish its two lines
        return counts, sums


_install_lock = threading.Lock()
_histogram = PauseHistogram()


def install() -> PauseHistogram:
    """Put the process's pause histogram in gc.callbacks (once; again if removed)."""
    if _histogram not in gc.callbacks:
        with _install_lock:
            if _histogram not in gc.callbacks:
                gc.callbacks.append(_histogram)
    return _histogram


def pause_histogram() -> PauseHistogram:
    """The process's pause histogram (installed by :func:`install`)."""
    return _histogram
