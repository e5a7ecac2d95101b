"""``find_leaks()``: what keeps memory that should have gone.

Three answers from one check of ``rounds`` censuses ``interval`` apart:
- ``cycles``: what the cycle collector frees during the check (objects only reference
  cycles kept alive), counted by type at its first and last collections (``_leak_cycles``);
- ``garbage``: what ``gc.garbage`` holds: found unreachable, never freed;
- ``growing``: types, containers and tracked objects that grew at every census
  (``_leak_growth``), each with who holds it; given ``monitor=``, also those that grew
  steadily over the Monitor's kept history (its trends, and the same rule for containers);
- ``unreached``: objects alive that no root reaches, held by a reference from C
  (``_leak_unreached``): a pass before the first census and one after the last; a type is
  flagged when it grew between them (still grown at a third pass a moment later) or is
  the program's own and in both, the rest is the interpreter's steady state
  (``held_from_c_objects``).
The gc's debug flags, ``gc.garbage`` and ``gc.callbacks`` are left exactly as they were,
whatever happens; the report holds words and numbers only.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .._base import tracking
from .._base.validate import check_int, check_number
from ._leak_cycles import AutoCounter, CycleTally, garbage_rows
from ._leak_growth import GrowthWatch, history_growth
from ._leak_report import CycleGroup, GarbageGroup, LeakReport, UnreachedGroup
from ._leak_unreached import PassResult, judge, unreached_pass

if TYPE_CHECKING:
    from ..monitor import Monitor

__all__ = ["LeakReport", "find_leaks"]

_CONFIRM_GAP = 0.1  # seconds between the second pass and the one confirming a growth


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
    unreached: bool = True,
) -> LeakReport:
    """The check behind :func:`find_leaks`, with the clock and the wait injectable.

    ``unreached=False`` leaves out the two passes looking for what is held from C.
    """
    started = clock()
    deadline = started + timeout
    counter = AutoCounter()
    tally = CycleTally(counter)
    watch = GrowthWatch()
    partial = False
    passes: list[PassResult] = []
    notes: list[str] = []
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
                if unreached:
                    # before the watch follows the longest containers (some of them the
                    # interpreter's own, held from C), and again once it let go of them;
                    # at most a third of the timeout, so the censuses keep their time
                    first_deadline = min(deadline, started + timeout / 3)
                    _unreached_pass(passes, first_deadline, clock, notes)
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
        watch.release()
        if passes and passes[0].complete:
            _unreached_pass(passes, deadline, clock, notes)
            _confirm(passes, interval, deadline, clock, sleep, notes)
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
    if tally.kept_by_debug_flags:
        notes.append(
            f"gc.DEBUG_SAVEALL is set: {tally.kept_by_debug_flags:,} objects the check's"
            " collections found unreachable stay in gc.garbage"
        )
    if counter.uncollectable:
        notes.append(f"automatic collections found {counter.uncollectable:,} uncollectable objects")
    if len(order) > limit:
        notes.append(f"{len(order) - limit:,} more types in cycles not shown (limit={limit})")
    held, held_objects, held_types, checked = _held_from_c(passes, limit, notes)
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
        unreached=held,
        held_from_c_objects=held_objects,
        held_from_c_types=held_types,
        unreached_checked=checked,
        unreached_seconds=sum(p.seconds for p in passes),
    )


def _unreached_pass(
    passes: list[PassResult], deadline: float, clock: Callable[[], float], notes: list[str]
) -> None:
    """One pass for what is held from C, appended to ``passes``; a failure is a note."""
    try:
        # the roots of this thread begin at the check's frame (its locals hold its work);
        # this function's and the pass's own frames are left out
        passes.append(unreached_pass(deadline=deadline, caller=sys._getframe(1), clock=clock))
    except Exception as exc:  # contained: the check's other answers still stand
        notes.append(f"the search for what is held from C failed: {type(exc).__name__}: {exc}")
        passes.clear()


def _confirm(
    passes: list[PassResult],
    interval: float,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    notes: list[str],
) -> None:
    """A third pass a moment later when a type grew, so what a thread held for an instant
    (a temporary on its value stack) is not taken for a leak."""
    if len(passes) != 2 or not passes[1].complete:
        return
    if not any(why == "grew" for _, why, _ in judge(*passes).flagged):
        return
    gap = min(max(interval, _CONFIRM_GAP), 4 * _CONFIRM_GAP)
    if clock() + gap >= deadline:
        notes.append("a type held from C grew; the timeout left no time to confirm it")
        return
    sleep(gap)
    _unreached_pass(passes, deadline, clock, notes)


def _held_from_c(
    passes: list[PassResult], limit: int, notes: list[str]
) -> tuple[list[UnreachedGroup], int, int, bool]:
    """The flagged groups (at most ``limit``), the steady rest, and whether both passes ran."""
    if not passes:
        return [], 0, 0, False  # not asked for, or failed (a note says so)
    if len(passes) < 2 or not passes[1].complete:
        notes.append(
            "partial: the timeout stopped the search for what is held from C"
            f" ({'first' if len(passes) < 2 else 'second'} pass); nothing is reported of it"
        )
        return [], 0, 0, False
    again = passes[2] if len(passes) > 2 and passes[2].complete else None
    if len(passes) > 2 and again is None:
        notes.append("a type held from C grew; the timeout stopped the pass confirming it")
    verdict = judge(passes[0], passes[1], again)
    rows = [
        UnreachedGroup(g.type, g.entries, g.objects, g.size_bytes, why, first, g.sample)
        for g, why, first in verdict.flagged
    ]
    if len(rows) > limit:
        notes.append(f"{len(rows) - limit:,} more types held from C not shown (limit={limit})")
    return rows[:limit], verdict.steady_objects, verdict.steady_types, True
