"""``find_leaks()``: what keeps memory that should have gone.

Three answers from one check of ``rounds`` censuses ``interval`` apart:
- ``cycles``: what the cycle collector frees during the check (objects only reference
  cycles kept alive), counted by type at its first and last collections (``_leak_cycles``);
- ``garbage``: what ``gc.garbage`` holds: found unreachable, never freed;
- ``growing``: types, containers and tracked objects that grew at every census
  (``_leak_growth``), each with who holds it; given ``monitor=``, also those that grew
  steadily over the Monitor's kept history (its trends, and the same rule for containers).
The gc's debug flags, ``gc.garbage`` and ``gc.callbacks`` are left exactly as they were,
whatever happens; the report holds words and numbers only.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .._base import tracking
from .._base.validate import check_int, check_number
from ._leak_cycles import AutoCounter, CycleTally, garbage_rows
from ._leak_growth import GrowthWatch, history_growth
from ._leak_report import CycleGroup, GarbageGroup, LeakReport

if TYPE_CHECKING:
    from ..monitor import Monitor

__all__ = ["LeakReport", "find_leaks"]


def find_leaks(
    *,
    rounds: int = 3,
    interval: float = 0.5,
    limit: int = 20,
    timeout: float = 10.0,
    monitor: Monitor | None = None,
) -> LeakReport:
    """Reference cycles, uncollectable gc.garbage and steady growth over ``rounds`` censuses.

    ``monitor``: a :class:`memscope.Monitor` whose kept history adds the types, containers
    and tracked objects that grew steadily over it (deep snapshots carry the first two).
    """
    check_int("rounds", rounds, low=1, high=1_000)
    interval = check_number("interval", interval, low=0.0, high=3_600.0, unit="seconds")
    check_int("limit", limit, low=1, high=10_000)
    timeout = check_number("timeout", timeout, low=0.0, low_open=True, unit="seconds")
    if monitor is not None:
        from ..monitor import Monitor

        if not isinstance(monitor, Monitor):
            raise TypeError(
                f"monitor must be a memscope.Monitor or None, got {type(monitor).__name__}"
            )
    report = check(rounds=rounds, interval=interval, limit=limit, timeout=timeout)
    return report if monitor is None else with_history(report, monitor, limit)


def with_history(report: LeakReport, monitor: Monitor, limit: int) -> LeakReport:
    """``report`` with the rows of what grew steadily over ``monitor``'s history added."""
    try:
        rows, snapshots = history_growth(monitor, limit)
    except Exception as exc:  # contained: the check's own answers still stand
        return replace(report, notes=[*report.notes, f"the monitor's history was not read: {exc}"])
    # a running Monitor takes snapshots during the check too: its own types and its len
    # grow at each census, and both are bounded memscope data, not the program's
    own = {name for name, obj, _ in tracking.tracked_objects() if obj is monitor}
    checked = [
        g
        for g in report.growing
        if not (g.kind == "type" and g.name.startswith("memscope."))
        and not (g.kind == "tracked" and g.name in own)
    ]
    return replace(report, growing=[*checked, *rows], history_snapshots=snapshots)


def check(
    *,
    rounds: int,
    interval: float,
    limit: int,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LeakReport:
    """The check behind :func:`find_leaks`, with the clock and the wait injectable."""
    started = clock()
    deadline = started + timeout
    counter = AutoCounter()
    tally = CycleTally(counter)
    watch = GrowthWatch()
    partial = False
    counter.install()
    try:
        for i in range(rounds + 1):
            if i:
                wait = started + i * interval - clock()
                if clock() + max(wait, 0.0) > deadline:
                    partial = True
                    break
                if wait > 0:
                    sleep(wait)
            # a collection before each census, so garbage is never taken for growth: full
            # ones (which count what only cycles kept alive) first and last, a young one
            # (cheap: what was made since) between them
            if i == 0:
                tally.collect(last=False)
                # what the collection found is held in lists of the tally: following one
                # of them would keep it alive past the tally's last collection
                watch.start({id(tally.held), *map(id, tally.held)})
            elif i == rounds:
                tally.collect(last=True)
            else:
                gc.collect(1)
            watch.census(clock())
            if clock() > deadline and i < rounds:
                partial = True
                break
        tally.finish()
        growing = watch.growing(limit)
    finally:
        tally.finish()
        counter.remove()
        watch.release()
    rows, garbage_count, garbage_bytes = garbage_rows()
    order = sorted(tally.by_type, key=lambda t: tuple(tally.by_type[t][::-1]), reverse=True)
    cycles = [
        CycleGroup(
            tally.names.get(tid, "?"),
            tally.by_type[tid][0],
            tally.by_type[tid][1],
            tally.samples.get(tid, ""),
        )
        for tid in order[:limit]
    ]
    notes = []
    if tally.kept_by_debug_flags:
        notes.append(
            f"gc.DEBUG_SAVEALL is set: {tally.kept_by_debug_flags:,} objects the check's"
            " collections found unreachable stay in gc.garbage"
        )
    if counter.uncollectable:
        notes.append(f"automatic collections found {counter.uncollectable:,} uncollectable objects")
    if len(order) > limit:
        notes.append(f"{len(order) - limit:,} more types in cycles not shown (limit={limit})")
    return LeakReport(
        cycles=cycles,
        garbage=[GarbageGroup(*row) for row in rows[:limit]],
        growing=growing,
        cycle_objects=tally.objects,
        cycle_bytes=tally.bytes,
        auto_collected=counter.collected,
        garbage_objects=garbage_count,
        garbage_bytes=garbage_bytes,
        censuses=len(watch.times),
        interval_seconds=interval,
        seconds=clock() - started,
        partial=partial,
        notes=notes,
    )
