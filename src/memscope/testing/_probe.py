"""The probe: takes a check's readings without growing itself and hands them over as Readings."""

from __future__ import annotations

import gc
import sys
import threading
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from memscope._base.aio import pending_tasks
from memscope._base.libc import fill_thread_cache, mallinfo2, set_fastbins
from memscope._base.proc import fd_count
from memscope._base.units import type_name

from ._options import Census, CheckOptions, ignore_predicate
from ._readings import Readings, TypeReadings
from ._report import AllocationSite
from ._settle import abc_classes, settle
from ._sites import grown_sites
from ._verdict import wants_more

__all__ = ["SLOW_RUN_SECONDS", "Probe", "default_census"]

#: a run at least this long, beside other threads, is measured with the complete census
#: from the baseline on: a census of a test runner's heap (with its full collection) takes
#: about 0.3 s, so counting every reading costs less than the blurred screen's second
#: pass of 1 + rounds runs unless the check measures on for tens of rounds
SLOW_RUN_SECONDS = 1.0


def default_census() -> Mapping[type, tuple[int, int]]:
    """The complete census: every live type -> (count, shallow bytes), untracked objects too.

    Taken between runs from the same place: the calling thread's frames are left out.
    """
    from memscope.collectors._heap import count_types

    return count_types(complete=True, current_frames=False)


def malloc_in_use() -> int:
    """Bytes glibc malloc has handed out (in use plus mmap'd), or -1 where it cannot say.

    Objects over 512 bytes and the buffers of bytearrays, lists and dicts come from
    malloc, not pymalloc, so ``sys.getallocatedblocks()`` does not see them grow.
    """
    fill_thread_cache()  # its free small chunks then count the same at every reading
    info = mallinfo2()
    if info is None:
        return -1
    return info["uordblks"] + info["hblkhd"]


def thread_starts() -> int:
    """How many threads were numbered so far, or -1 if unknown.

    ``threading`` numbers every thread it names itself (``Thread-N``) from one counter, and
    ``ThreadPoolExecutor`` every pool it names; a thread started and joined within a run
    (or a pool made and shut down) leaves no other trace at the next reading.
    """
    total = _count_of(getattr(threading, "_counter", None))
    if total < 0:
        return -1
    pools = sys.modules.get("concurrent.futures.thread")
    executor = getattr(pools, "ThreadPoolExecutor", None)
    return total + max(0, _count_of(getattr(executor, "_counter", None)))


def _count_of(counter: object) -> int:
    """The next value of an ``itertools.count().__next__``, or -1 if it is not one."""
    text = repr(getattr(counter, "__self__", None))
    if not (text.startswith("count(") and text.endswith(")")):
        return -1
    try:
        return int(text[6:-1])
    except ValueError:
        return -1


def _frame_objects_of_the_stack() -> None:
    """Give every frame of this call stack its frame object, first thing in a reading.

    The census walks running frames' locals, which creates the frame objects of the
    stack it runs on; those of the calls between the driver and the reading are new each
    round and freed as they return, after the reading's last count. Created here, before
    the first count, they cancel out from one reading to the next instead.
    """
    frame = sys._getframe(1)
    while frame is not None:
        frame = frame.f_back  # type: ignore[assignment]


class Probe:
    """Takes the readings; everything it keeps is pre-allocated, so it does not grow itself.

    Per-round memory deltas are ``blocks before the next reading`` minus ``blocks after
    this reading's bookkeeping`` (both right after a full collection), so whatever the
    probe allocates for itself falls outside every measured interval.

    With ``screen`` the warmup readings are light (no collection, no census) and the
    baseline reading freezes the heap that exists then (``gc.freeze()``) until
    :meth:`close`: every later collection and census walks only what the code under
    test made since, not the test runner's long-lived heap. Readings are kept for up to
    ``max_rounds`` measured rounds; after ``rounds`` the probe sets ``more`` while some
    series could still go either way.
    """

    def __init__(
        self,
        opts: CheckOptions,
        *,
        census: Census | None,
        loop: Any = None,
        tasks: Callable[[], int] | None = None,
        inline_trace: bool = False,
        screen: bool = False,
        max_rounds: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        capacity = max(opts.rounds, opts.max_rounds if max_rounds is None else max_rounds)
        n = opts.warmup + capacity + 1
        self.opts = opts
        self.n = n
        self.max_rounds = capacity
        self.screen = screen
        self.froze = False
        self.fastbins_off = False  # begin() turned glibc's fastbins off; close() turns them on
        self.clock = clock
        self.began = 0.0  # when the last run before the baseline started (screen only)
        # the screen freezes before the last warmup run, so the baseline census already
        # holds what a run leaves alive (the runner's reports, the run's frames' objects)
        self.freeze_at = max(0, opts.warmup - 1)
        self.more = False
        self.last = -1
        self.loop = loop
        self.tasks_source = tasks
        self.inline_trace = inline_trace
        self.census_fn = (census or default_census) if opts.census else None
        zeros = bytes(8 * n)
        self.blocks_before = array("q", zeros)  # read first thing, after collecting
        self.blocks_after = array("q", zeros)  # read after the probe's own bookkeeping
        self.malloc_before = array("q", zeros)  # -1 where the C library cannot say
        self.malloc_after = array("q", zeros)
        self.fds = array("q", zeros)  # -1 where the OS cannot say
        self.threads = array("q", zeros)
        self.thread_starts = array("q", zeros)  # -1 where threading cannot say
        self.tasks = array("q", zeros)
        self.traced = array("q", zeros)
        self.thread_base: set[int] = set()
        # census state: type -> slot, then counts/sizes by slot; per-round deltas by slot
        # The index starts with one class (which the gc tracks), so the dict is tracked
        # from here on and the screen's gc.freeze() freezes it: empty, it was untracked
        # then, became a new object at the first census, and every type it learned was
        # walked as if the code under test held it (`type` +7 in round 1 only, one more
        # round measured). The probe's own arrays are in every census anyway.
        self.index: dict[type, int] = {array: 0}
        self.prev = array("q", [0])
        self.cur = array("q", [0])
        self.base_sizes = array("q", [0])
        self.last_sizes = array("q", [0])
        self.hist = [array("q") for _ in range(capacity)]
        self.prev_sizes = array("q", [0])
        self.cur_sizes = array("q", [0])
        self.hist_sizes = [array("q") for _ in range(capacity)]
        self.base_counts = array("q", [0])
        self.started_tracing = False
        self.tracing = False
        self.trace_start: Any = None
        self.census_error: str | None = None
        # the ABCs whose caches every settle clears: found again at each reading up to the
        # baseline, outside the measured rounds, and then the same for all of them
        self.abcs = abc_classes()
        if self.census_fn is default_census:
            import memscope.collectors._heap  # noqa: F401  (its first import is not the code's)

    def _thread_count(self) -> int:
        mode = self.opts.threads
        if mode == "ignore":
            return 0
        if mode == "started":
            return sum(1 for t in threading.enumerate() if t.ident not in self.thread_base)
        return threading.active_count()

    def begin(self) -> None:
        """Called once before the first run: takes reading 0."""
        # the malloc'd bytes must count chunks, not where glibc keeps the free ones
        self.fastbins_off = set_fastbins(False)
        self.thread_base.update(t.ident for t in threading.enumerate() if t.ident is not None)
        if self.census_fn is not None and self.opts.warmup == 0:
            # no warmup reading to settle the census (its first import, the probe's type
            # index, what its first walk of running frames sets up) before the baseline:
            # a priming reading does it, and the baseline overwrites it
            self.read(0)
        self.read(0)

    def read(self, i: int) -> None:
        """Reading ``i`` (0 before the first run, ``i`` after run ``i``)."""
        _frame_objects_of_the_stack()
        opts = self.opts
        self.last = i
        if self.screen and i < self.freeze_at:
            # an early warmup reading of the screen is only the resources' start
            self._resources(i)
            if self.clock is not None:
                self.began = self.clock()  # the next run, the last before the baseline, is timed
            return
        if self.screen and i == self.freeze_at and self._slow_and_crowded(i):
            # slow runs amid other threads: the screen would be blurred (see the driver)
            # and its complete-census pass would cost 1 + rounds slow runs; counting the
            # whole heap at each reading from here on costs less than one of those runs
            self.screen = False
        if self.screen and i == self.freeze_at and gc.get_freeze_count() == 0:
            # the baseline of the screen: a young collection, then everything alive (and
            # any older garbage, which then stays put) is frozen; a full collection of the
            # runner's heap here would cost more than the whole rest of the check. (A heap
            # someone else froze stays theirs: gc.unfreeze() cannot pick ours out.)
            settle(opts, generation=1, abcs=self.abcs)
            gc.freeze()
            self.froze = True
        else:
            settle(opts, abcs=self.abcs)
        self.blocks_before[i] = sys.getallocatedblocks()
        self.malloc_before[i] = malloc_in_use()
        self._resources(i)
        self._measure(i)
        if i <= opts.warmup:
            self.abcs = abc_classes()
        settle(opts, abcs=self.abcs)
        self.blocks_after[i] = sys.getallocatedblocks()
        self.malloc_after[i] = malloc_in_use()

    def _slow_and_crowded(self, i: int) -> bool:
        """At the screen's baseline: a run of at least SLOW_RUN_SECONDS beside other threads.

        The run timed is the last one before the baseline (the first may be slow only
        because it imports or fills caches). Other threads are alive now (counted as
        ``threads`` counts them) or the warmup runs started some (``threading``'s and the
        pools' counters moved).
        """
        if self.clock is None or i < 1 or self.census_fn is None:
            return False
        if self.clock() - self.began < SLOW_RUN_SECONDS:
            return False
        if self.opts.threads == "process" and threading.active_count() > 1:
            return True
        starts = thread_starts()
        return starts >= 0 and self.thread_starts[0] >= 0 and starts > self.thread_starts[0]

    def _resources(self, i: int) -> None:
        fds = fd_count()
        self.fds[i] = -1 if fds is None else fds
        self.threads[i] = self._thread_count()
        self.thread_starts[i] = thread_starts()
        self.tasks[i] = (
            self.tasks_source() if self.tasks_source is not None else pending_tasks(self.loop)
        )

    def _measure(self, i: int) -> None:
        opts = self.opts
        if i == opts.warmup and self.inline_trace:
            # the start snapshot is taken before the census so every census sees it
            if not self.tracing:
                self._start_tracing()
            if self.tracing:
                import tracemalloc

                self.trace_start = tracemalloc.take_snapshot()
        if self.tracing:
            import tracemalloc

            self.traced[i] = tracemalloc.get_traced_memory()[0]
        # the census is the slow reading: from the last warmup reading on is all the verdict
        # needs (that one only settles the probe's own index before the baseline)
        first = self.freeze_at if self.screen else opts.warmup - 1
        if self.census_fn is not None and self.census_error is None and i >= first:
            self._census(i)
        if self.inline_trace and i == opts.warmup - 1:
            # trace the last warmup run too, so the first measured round starts steady
            self._start_tracing()
        if i >= opts.warmup + opts.rounds:
            self.more = wants_more(self._readings(sites=False), opts, self.max_rounds)

    def _start_tracing(self) -> None:
        import tracemalloc

        if tracemalloc.is_tracing():
            self.tracing = True
        elif self.opts.trace:
            tracemalloc.start(self.opts.trace_frames)
            self.started_tracing = True
            self.tracing = True

    def _census(self, i: int) -> None:
        assert self.census_fn is not None
        try:
            now = self.census_fn()
        except Exception as exc:  # the census is evidence, not a requirement
            self.census_error = f"{type(exc).__name__}: {exc}"
            return
        # the probe's own arrays are in the census too: take them out, so that filling
        # its rows (or a new type's slot) never reads as the code under test growing
        own = self._own_arrays()
        counted = now.get(array)
        if counted is not None and not self.froze:  # frozen, they are not in the census
            now = dict(now)
            now[array] = (
                counted[0] - len(own),
                counted[1] - sum(map(sys.getsizeof, own)),
            )
        index = self.index
        cur = self.cur
        cur_sizes = self.cur_sizes
        size_now: dict[int, int] = {}
        del cur[:]
        cur.frombytes(bytes(8 * len(index)))
        del cur_sizes[:]
        cur_sizes.frombytes(bytes(8 * len(index)))
        for tp, (count, size) in now.items():
            slot = index.get(tp)
            if slot is None:
                slot = len(index)
                index[tp] = slot
                cur.append(0)
                cur_sizes.append(0)
                for arr in (
                    self.prev,
                    self.prev_sizes,
                    self.base_counts,
                    self.base_sizes,
                    self.last_sizes,
                ):
                    arr.append(0)
                for hist in (self.hist, self.hist_sizes):
                    for arr in hist:
                        if len(arr):
                            arr.append(0)
            cur[slot] = count
            cur_sizes[slot] = size
            size_now[slot] = size
        del now
        warmup = self.opts.warmup
        if i == warmup:
            self.base_counts[:] = cur
            for slot, size in size_now.items():
                self.base_sizes[slot] = size
        if i >= warmup:
            # every round's rows are sized at the baseline and then filled in place, so
            # the probe's own arrays do not grow round by round (they would read as a leak)
            for hist in (self.hist, self.hist_sizes):
                for arr in hist:
                    if len(arr) < len(index):
                        arr.frombytes(bytes(8 * (len(index) - len(arr))))
        if i > warmup:
            k = i - warmup - 1
            for row, now_, before in (
                (self.hist[k], cur, self.prev),
                (self.hist_sizes[k], cur_sizes, self.prev_sizes),
            ):
                for slot in range(len(now_)):
                    row[slot] = now_[slot] - before[slot]
            for slot in range(len(self.last_sizes)):
                self.last_sizes[slot] = size_now.get(slot, 0)
        del size_now
        self.prev, self.cur = cur, self.prev
        self.prev_sizes, self.cur_sizes = cur_sizes, self.prev_sizes

    def _own_arrays(self) -> list[array[int]]:
        return [
            self.blocks_before,
            self.blocks_after,
            self.malloc_before,
            self.malloc_after,
            self.fds,
            self.threads,
            self.thread_starts,
            self.tasks,
            self.traced,
            self.prev,
            self.cur,
            self.prev_sizes,
            self.cur_sizes,
            self.base_counts,
            self.base_sizes,
            self.last_sizes,
            *self.hist,
            *self.hist_sizes,
        ]

    def _types(self) -> list[TypeReadings]:
        rounds = range(self._rounds())
        out: list[TypeReadings] = []
        for tp, slot in self.index.items():
            steps = [int(self.hist[k][slot]) if slot < len(self.hist[k]) else 0 for k in rounds]
            sizes = [
                int(self.hist_sizes[k][slot]) if slot < len(self.hist_sizes[k]) else 0
                for k in rounds
            ]
            if not any(steps) and not any(sizes):
                continue  # no rule can fire on a type that never changed
            out.append(
                TypeReadings(
                    type=type_name(tp),
                    count=int(self.prev[slot]),  # counts at the last reading
                    deltas=steps,
                    size_deltas=sizes,
                    size_bytes_delta=int(self.last_sizes[slot] - self.base_sizes[slot]),
                )
            )
        return out

    def _rounds(self) -> int:
        return max(0, self.last - self.opts.warmup)

    def readings(self) -> Readings:
        """Everything read so far, as plain data (call after the last reading)."""
        return self._readings(sites=True)

    def _readings(self, *, sites: bool) -> Readings:
        found: list[AllocationSite] = []
        if sites and self.tracing and self.trace_start is not None:
            import tracemalloc

            end = tracemalloc.take_snapshot()
            found = grown_sites(
                self.trace_start, end, self.opts, ignore_predicate(self.opts.ignore)
            )
        used = self.last + 1
        malloc = min(self.malloc_before[self.opts.warmup : used], default=-1) >= 0
        return Readings(
            warmup=self.opts.warmup,
            rounds=self._rounds(),
            blocks_before=list(self.blocks_before[:used]),
            blocks_after=list(self.blocks_after[:used]),
            malloc_before=list(self.malloc_before[:used]) if malloc else None,
            malloc_after=list(self.malloc_after[:used]) if malloc else None,
            tasks=list(self.tasks[:used]),
            fds=None if min(self.fds[:used]) < 0 else list(self.fds[:used]),
            threads=None if self.opts.threads == "ignore" else list(self.threads[:used]),
            traced=list(self.traced[:used]) if self.tracing else None,
            types=self._types(),
            census=self.census_fn is not None,
            census_error=self.census_error,
            sites=found,
            thread_starts=None
            if min(self.thread_starts[:used]) < 0
            else list(self.thread_starts[:used]),
        )

    def close(self) -> None:
        """Unfreeze the heap and stop tracing if the probe did either; drop its state."""
        if self.fastbins_off:
            set_fastbins(True)
            self.fastbins_off = False
        if self.froze:
            gc.unfreeze()
            self.froze = False
        if self.started_tracing:
            import tracemalloc

            tracemalloc.stop()
            self.started_tracing = False
        self.trace_start = None
        self.index.clear()
        self.abcs = ()
