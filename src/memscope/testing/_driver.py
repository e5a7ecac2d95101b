"""The one driver of every check: a step generator that asks for runs, and the sync and
async loops that answer it."""

from __future__ import annotations

import time
from array import array
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import replace
from types import TracebackType
from typing import Any, cast

from ._options import Census, CheckOptions
from ._probe import Probe
from ._report import GrowthReport
from ._settle import QuietRepeats
from ._sites import TracedPass
from ._verdict import screen_blurred, verdict

__all__ = ["Steps", "check_steps", "run_check", "run_check_async"]

_MIN_BUDGET_SECONDS = 5.0

#: yields the number of the run to do now, receives None once it is done (or the run's
#: exception, thrown in), and returns the report
Steps = Generator[int, None, GrowthReport]


def check_steps(
    opts: CheckOptions,
    *,
    label: str,
    census: Census | None = None,
    loop: Any = None,
    tasks: Callable[[], int] | None = None,
    inline_trace: bool | None = None,
    rerun: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> Steps:
    """The check as steps: readings between the runs it yields, then the verdict.

    The measured rounds run on a frozen long-lived heap (the screen, ``opts.screen``),
    for ``rounds`` rounds and more while a series is unclear, up to ``max_rounds``. A
    leak verdict is then given its evidence: a short pass with the complete census on the
    whole heap (the types), and a traced pass of ``rounds + 1`` runs (the sites; allowed
    by ``rerun``). ``inline_trace`` (default: ``opts.trace is True``) traces the measured
    runs instead. A run's exception thrown in ends the check with it, except in the
    evidence passes, where it only costs that evidence. ``tasks`` replaces the
    pending-task reading.
    """
    start = clock()
    # with no warmup the first measured run is the code's very first: its one-time growth
    # is not what the screen (with its young census) is for
    screen = rerun and opts.screen and opts.warmup > 0
    probe = Probe(
        opts,
        census=census,
        loop=loop,
        tasks=tasks,
        inline_trace=opts.trace is True if inline_trace is None else inline_trace,
        screen=screen,
        max_rounds=opts.max_rounds if rerun else opts.rounds,  # a block runs once
        clock=clock,
    )
    runs = iter(range(1, opts.warmup + opts.rounds + 1))  # made before the baseline reading
    last = opts.warmup + opts.rounds
    # the time budget lives in a slot made before the baseline: a float bound to a local
    # after the planned runs would be one block the check itself kept, inside the first
    # extra round (it read as a step at round rounds + 1 and cost ten more rounds)
    budget = array("d", [0.0])
    try:
        probe.begin()
        for i in runs:
            yield i
            probe.read(i)
        # a series could still go either way: measure on, to the bound of rounds and of
        # time (ten times what the planned runs took, and at least five seconds: a
        # loaded machine must not cut short a cache of 50 that is still filling)
        budget[0] = max(_MIN_BUDGET_SECONDS, 10 * (clock() - start))
        while probe.more and clock() - start < budget[0]:
            last += 1
            yield last
            probe.read(last)
        readings = probe.readings()
        screen = probe.screen  # slow runs amid threads are counted whole from the baseline
    finally:
        probe.close()
    report = verdict(readings, opts, label=label, seconds=clock() - start)
    blurred = screen and not report.leaked and screen_blurred(readings, opts)
    del readings
    report.passes.append("screen" if screen else "census")
    if screen and report.leaked and opts.census and not (report.grew or report.grew_bytes):
        # the screen's census sees only objects made since its baseline: when it named no
        # type, one short pass with the complete census names what grew in old containers
        last = yield from _census_pass(report, opts, last, census=census, loop=loop, tasks=tasks)
    elif blurred:
        # other threads' allocations may have hidden an old object growing: the complete
        # census, by type, decides; its type rules are a leak of their own
        last = yield from _census_pass(
            report, opts, last, census=census, loop=loop, tasks=tasks, decides=True
        )
    if rerun and report.leaked and opts.trace is not False and not report.sites:
        yield from _traced_pass(report, opts, last)
    report.seconds = clock() - start
    return report


def _census_pass(
    report: GrowthReport,
    opts: CheckOptions,
    last: int,
    *,
    census: Census | None,
    loop: Any,
    tasks: Callable[[], int] | None,
    decides: bool = False,
) -> Generator[int, None, int]:
    """After a leak verdict of the screen: ``rounds`` runs read with the complete census.

    The screen's census sees only objects made since its baseline; this pass counts the
    whole heap, so growth of old containers' strs, ints and bytes is named too. It
    adds evidence (types) and failures of its own, never takes one away.
    """
    extra = replace(opts, warmup=1, max_rounds=opts.rounds, trace=False)
    probe = Probe(extra, census=census, loop=loop, tasks=tasks)
    runs = iter(range(1, 2 + opts.rounds))  # made before the baseline reading
    try:
        probe.begin()
        for k in runs:
            yield last + k
            probe.read(k)
        readings = probe.readings()
    except Exception as exc:  # evidence is a courtesy: the verdict stands without it
        report.noise.append(f"census pass failed: {type(exc).__name__}: {exc}")
        return last + 1 + opts.rounds
    finally:
        probe.close()
    full = verdict(readings, extra, label=report.label, seconds=0.0)
    del readings
    merge_census_pass(report, full, decides=decides)
    return last + 1 + opts.rounds


def merge_census_pass(report: GrowthReport, full: GrowthReport, *, decides: bool = False) -> None:
    """Put the complete census's evidence into the screen's ``report``.

    ``decides``: the screen was blurred by other threads and found nothing; the census's
    type failures then stand as the leak, with a word on why the census was asked.
    """
    report.passes.append("census")
    if full.grew:
        report.grew = full.grew
    if full.grew_bytes:
        report.grew_bytes = full.grew_bytes
    if full.ignored and not report.ignored:
        report.ignored = full.ignored
    report.census = report.census or full.census
    for failure in full.failures:
        if "type(s)" in failure and not any("type(s)" in f for f in report.failures):
            if decides:
                failure += (
                    " (seen by the complete census: other threads' allocations hid it from"
                    " the malloc'd bytes)"
                )
            report.failures.append(failure)


def _traced_pass(report: GrowthReport, opts: CheckOptions, last: int) -> Generator[int, None, None]:
    traced = TracedPass(opts)
    try:
        # one unmeasured run first: tracing's own first-use allocations settle in it
        for k in range(opts.rounds + 1):
            yield last + 1 + k
            traced.mark(k)
        traced.apply(report)
    except Exception as exc:  # naming sites is a courtesy: the verdict stands without it
        report.noise.append(f"traced pass failed: {type(exc).__name__}: {exc}")
    finally:
        traced.close()


class _Runs:
    """Answers the requests of :func:`check_steps` for the sync and the async loop alike.

    Iterating gives the number of each run the steps ask for; the run goes inside
    ``with runs:``, whose end is the answer: done, or the run's exception thrown into the
    steps (which end the check with it, or take it and ask for the next run). Runs after
    the first are quiet. ``report`` is set once the steps return.
    """

    report: GrowthReport  # set by the last answer; the loop only ends after it (or raises)

    def __init__(self, steps: Steps) -> None:
        self._steps = steps
        self._quiet = QuietRepeats()
        self._quieted = False
        self._asked: int | None = None
        self._answer(None)  # sending None first starts the steps: the baseline reading

    def __iter__(self) -> Iterator[int]:
        while self._asked is not None:
            yield self._asked

    def __enter__(self) -> None:
        self._quieted = self._asked != 1  # the first run shows its warnings as usual
        if self._quieted:
            self._quiet.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._quieted:
            self._quiet.__exit__(kind, exc, tb)
        self._answer(exc)
        return True  # the steps took the exception; one they do not take, throw() re-raises

    def _answer(self, exc: BaseException | None) -> None:
        """Tell the steps the run is done (or how it failed); keep their next request."""
        try:
            self._asked = self._steps.send(None) if exc is None else self._steps.throw(exc)
        except StopIteration as stop:
            self._asked = None
            self.report = cast(GrowthReport, stop.value)


def run_check(
    run_once: Callable[[int], object],
    opts: CheckOptions,
    *,
    label: str,
    census: Census | None = None,
    loop: Any = None,
    tasks: Callable[[], int] | None = None,
) -> GrowthReport:
    """Run ``run_once(i)`` for every run :func:`check_steps` asks for; return the report."""
    runs = _Runs(check_steps(opts, label=label, census=census, loop=loop, tasks=tasks))
    for i in runs:
        with runs:
            run_once(i)
    return runs.report


async def run_check_async(
    run_once: Callable[[int], Awaitable[object] | object],
    opts: CheckOptions,
    *,
    label: str,
    census: Census | None = None,
    tasks: Callable[[], int] | None = None,
) -> GrowthReport:
    """On the running loop: like :func:`run_check`, awaiting what ``run_once(i)`` returns."""
    import asyncio

    loop = asyncio.get_running_loop()
    runs = _Runs(check_steps(opts, label=label, census=census, loop=loop, tasks=tasks))
    for i in runs:
        with runs:
            await _run_async(run_once, i)
            # give tasks the code just scheduled their next steps before counting them
            for _ in range(3):
                await asyncio.sleep(0)
    return runs.report


async def _run_async(run_once: Callable[[int], Awaitable[object] | object], i: int) -> None:
    import inspect

    result = run_once(i)
    if inspect.isawaitable(result):
        await result
    del result
