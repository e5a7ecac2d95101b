"""The no-growth verdict: a pure function from readings and options to a GrowthReport."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

from ._options import MAX_TOP, CheckOptions, ignore_predicate
from ._readings import Readings, TypeReadings
from ._report import GrowthReport, TypeGrowth, signed
from ._shape import MIN_SERIES_FOR_STEPS, Shape, high_increments, series_shape

__all__ = [
    "SMALL_CHUNK_BYTES",
    "chunk_churn",
    "kept_bytes",
    "screen_blurred",
    "threads_came_and_went",
    "verdict",
    "wants_more",
]

# a size can step up twice by chance (a dict resizing): in-place growth needs 3 rounds
_MIN_ROUNDS_IN_PLACE = 3
#: the largest chunk glibc keeps in a thread's cache (tcache: up to 7 freed chunks of each
#: size to 1032 usable bytes, counted as in use); the runtime's thread tables
#: (threading._active, _dangling) are of that size too
SMALL_CHUNK_BYTES = 1040


def _steps(series: Sequence[int], readings: Readings) -> list[int]:
    w, r = readings.warmup, readings.rounds
    return [series[i] - series[i - 1] for i in range(w + 1, w + r + 1)]


def _paired(before: Sequence[int], after: Sequence[int], readings: Readings) -> list[int]:
    # the probe's own bookkeeping falls between a reading's ``before`` and its ``after``,
    # so a round spans ``after[i - 1]`` .. ``before[i]`` and the probe is never inside it
    w, r = readings.warmup, readings.rounds
    return [before[i] - after[i - 1] for i in range(w + 1, w + r + 1)]


def _row(
    tr: TypeReadings, deltas: Sequence[int], shape: Shape, unit: str = "objects"
) -> TypeGrowth:
    return TypeGrowth(
        type=tr.type,
        deltas=list(deltas),
        count=tr.count,
        size_bytes_delta=tr.size_bytes_delta,
        unit=unit,
        shape=shape.kind,
    )


def _series(readings: Readings) -> dict[str, list[int]]:
    """Every per-round series the rules read, by the key the report uses."""
    deltas: dict[str, list[int]] = {
        "blocks": _paired(readings.blocks_before, readings.blocks_after, readings),
    }
    if readings.malloc_before is not None and readings.malloc_after is not None:
        deltas["malloc_bytes"] = _paired(readings.malloc_before, readings.malloc_after, readings)
    if readings.fds is not None:
        deltas["fds"] = _steps(readings.fds, readings)
    if readings.threads is not None:
        deltas["threads"] = _steps(readings.threads, readings)
    deltas["tasks"] = _steps(readings.tasks, readings)
    if readings.traced is not None:
        deltas["traced_bytes"] = _steps(readings.traced, readings)
    return deltas


def kept_bytes(deltas: Sequence[int]) -> list[int]:
    """Per-round growth of what was never given back: the rises of the series' floor.

    The floor after round *k* is the lowest total of round *k* or any later round. The
    allocator's own state goes up and down by whole buffers (a thread table resized, a
    freed chunk held in a per-thread cache, an arena's bookkeeping) and comes back down;
    memory the program keeps never does. A steady or stepped leak keeps its series as is
    (its totals only rise); growth that a later round gave back does not count.
    """
    floors: list[int] = []
    total = 0
    for d in deltas:
        total += d
        floors.append(total)
    for k in range(len(floors) - 2, -1, -1):
        floors[k] = min(floors[k], floors[k + 1])
    return [b - a for a, b in zip([0, *floors], floors, strict=False)]


def threads_came_and_went(readings: Readings) -> bool:
    """Whether the measured runs started threads (seen by threading's name counter)."""
    starts = readings.thread_starts
    w, r = readings.warmup, readings.rounds
    return starts is not None and len(starts) > w + r and starts[w + r] > starts[w]


def screen_blurred(readings: Readings, opts: CheckOptions) -> bool:
    """Whether other threads may have hidden growth of old objects from the screen.

    The screen sees old containers' new strs and buffers only through malloc'd bytes,
    which count the whole process: while another thread allocates, its buffers come and
    go between readings and a str that grows by a few hundred bytes a call reads as
    noise (its kept total can even fall). When other threads ran (or were started) and
    malloc'd bytes moved by more than a small chunk in all, the complete census is
    asked, which counts by type.
    """
    malloc = _series(readings).get("malloc_bytes")
    if malloc is None or not opts.census:
        return False
    others = readings.threads is not None and opts.threads == "process"
    crowded = (others and max(readings.threads or [0]) > 1) or threads_came_and_went(readings)
    return crowded and sum(map(abs, malloc)) > max(opts.min_growth_bytes, SMALL_CHUNK_BYTES)


def chunk_churn(kept: Sequence[int], min_growth: int) -> bool:
    """True if malloc'd bytes rose only in steps the size of one small chunk, not every round.

    Threads started and joined make glibc's per-thread caches take and hand over chunks
    of up to 1 KiB, and the runtime's thread tables resize by as much: in use, bounded by
    the number of threads at once, and filling over tens of calls on a loaded machine.
    A program keeping C memory on some calls only looks the same when its pieces are that
    small, so in runs that start threads, steps like these count only beside other
    evidence (a block, a type, a resource growing); malloc'd bytes that grow on every
    round count alone, and so do steps in runs that start no thread.
    """
    steps = high_increments(kept, min_growth)
    if not steps or len(steps) == len(kept):
        return False
    ordered = sorted(steps)
    return ordered[len(ordered) // 2] <= SMALL_CHUNK_BYTES


def _thresholds(opts: CheckOptions) -> dict[str, int]:
    return {
        "blocks": opts.min_growth,
        "malloc_bytes": opts.min_growth_bytes,
        "fds": 1,
        "threads": 1,
        "tasks": opts.min_growth,
    }


def _memory_moved(readings: Readings) -> bool:
    """Whether blocks or malloc'd bytes changed in any measured round."""
    deltas = _series(readings)
    return any(deltas["blocks"]) or any(deltas.get("malloc_bytes", ()))


def _all_series(
    readings: Readings, opts: CheckOptions, *, census: bool = True
) -> Iterator[tuple[str, Sequence[int], int]]:
    deltas = _series(readings)
    limits = _thresholds(opts)
    for key, values in deltas.items():
        # fds and threads are not measured on: any net growth over the allowance is a leak
        if key == "malloc_bytes":
            yield key, kept_bytes(values), limits[key]
        elif key in limits and key not in ("fds", "threads"):
            yield key, values, limits[key]
    if not census:
        # no block and no malloc'd byte moved: a census count that changed is an old
        # object newly referenced from a new one (a static type, a small int), not growth
        return
    if readings.rounds >= _MIN_ROUNDS_IN_PLACE:
        for tr in readings.types:
            yield f"type {tr.type}", tr.deltas, opts.min_growth
            yield f"type {tr.type}", tr.size_deltas, opts.min_growth_bytes
    else:
        for tr in readings.types:
            yield f"type {tr.type}", tr.deltas, opts.min_growth


def wants_more(readings: Readings, opts: CheckOptions, max_rounds: int) -> bool:
    """True while some series could still turn out a leak or a bounded fill: measure more.

    Malloc'd bytes rising in chunk-sized steps (not every round) while the runs start
    threads ask for nothing more on their own: the verdict counts such steps only beside
    other evidence, and any series that could be that evidence still asks for itself.
    (A test starting ten threads a call measured on to 60 rounds for them: 115 s of
    more-itertools' 191 s under the check.)
    """
    if readings.rounds >= max_rounds:
        return False
    threads = threads_came_and_went(readings)
    for key, values, low in _all_series(readings, opts, census=_memory_moved(readings)):
        shape = series_shape(values, min_growth=low, rounds=opts.rounds, final=False)
        if shape.kind != "unclear":
            continue
        if key == "malloc_bytes" and threads and chunk_churn(values, low):
            continue
        return True
    return False


def verdict(readings: Readings, opts: CheckOptions, *, label: str, seconds: float) -> GrowthReport:
    """Apply the leak rules to ``readings``: no I/O, no gc, no clock, same input same report.

    Memory (blocks, malloc'd bytes, a type's count, a type's bytes) and pending tasks leak
    when their series has the shape of a leak: growth on every measured round, or new
    highs that keep coming over a long series (an intermittent leak); growth that levels
    off is a bounded structure filling. fds and threads leak on net growth over the
    allowance unless they levelled off.
    """
    w, r = readings.warmup, readings.rounds
    ignored = ignore_predicate(opts.ignore)
    deltas = _series(readings)

    def shape_of(values: Sequence[int], low: int) -> Shape:
        return series_shape(values, min_growth=low, rounds=opts.rounds)

    grew: list[TypeGrowth] = []
    grew_bytes: list[TypeGrowth] = []
    skipped: list[TypeGrowth] = []
    changed: list[tuple[int, str, str]] = []
    for tr in readings.types:
        steps = list(tr.deltas)
        counted = shape_of(steps, opts.min_growth)
        if counted.leaks:
            row = _row(tr, steps, counted)
            (skipped if ignored(row.type) else grew).append(row)
            continue
        sized = shape_of(tr.size_deltas, opts.min_growth_bytes)
        if r >= _MIN_ROUNDS_IN_PLACE and sized.leaks:
            # as many objects, but bigger every round: a buffer, str or list growing in
            # place (bytearray +=, text +=) leaks without a new object or block
            row = _row(tr, tr.size_deltas, sized, unit="bytes")
            (skipped if ignored(row.type) else grew_bytes).append(row)
        elif counted.kind == "levelled":
            text = f"{tr.type}: {signed(steps)} (levelled off)"
            changed.append((sum(abs(s) for s in steps), tr.type, text))
        elif any(steps):
            changed.append((sum(abs(s) for s in steps), tr.type, f"{tr.type}: {signed(steps)}"))
    for rows in (grew, grew_bytes, skipped):
        # the application's own types first, then the standard library's classes, then C
        # internals (_thread.lock, _io.FileIO), then builtins; the largest first in each
        rows.sort(key=lambda row: (type_tier(row.type), -sum(row.deltas), row.type))
    changed.sort(key=lambda item: (-item[0], item[1]))
    noise = [text for _, _, text in changed[: opts.top]]

    failures: list[str] = []
    blocks = deltas["blocks"]
    shape = shape_of(blocks, opts.min_growth)
    if shape.leaks:
        if skipped and not grew:
            noise.insert(0, "allocated blocks grew every round, explained by ignored types")
        elif shape.kind == "steady":
            failures.append(
                f"allocated blocks grew on every measured round (+{sum(blocks)} in {r} rounds)"
            )
        else:
            failures.append(shape.describe("allocated blocks"))
    elif shape.kind == "levelled" or (shape.kind == "unclear" and r >= MIN_SERIES_FOR_STEPS):
        noise.insert(0, shape.describe("allocated blocks"))
    elif any(blocks):
        noise.insert(0, f"allocated blocks: {signed(blocks)}")
    malloc = deltas.get("malloc_bytes")
    churn: tuple[int, Shape] | None = None
    # malloc'd bytes move by a few dozen bytes by chance (an arena's bookkeeping, a list
    # resized): like growth in place, they need a few rounds before they say anything
    if malloc is not None and r >= _MIN_ROUNDS_IN_PLACE:
        # only what was never given back: the allocator's churn (threads started and
        # joined resize its tables and fill its per-thread caches) comes back down
        kept = kept_bytes(malloc)
        shape = shape_of(kept, opts.min_growth_bytes)
        if shape.leaks and not (skipped and not grew):
            if (
                shape.kind == "steps"
                and threads_came_and_went(readings)
                and chunk_churn(kept, opts.min_growth_bytes)
            ):
                churn = (len(failures), shape)  # decided once the other rules have spoken
            else:
                failures.append(shape.describe("bytes malloc'd (objects over 512 B, buffers)"))
        elif shape.kind == "levelled":
            noise.append(shape.describe("malloc'd bytes"))
    if grew:
        steady = [row.type for row in grew if row.shape == "steady"]
        stepped = [row.type for row in grew if row.shape != "steady"]
        if steady:
            failures.append(
                f"{len(steady)} type(s) grew on every measured round: {', '.join(steady[:5])}"
            )
        if stepped:
            failures.append(
                f"{len(stepped)} type(s) grew in steps that kept coming over {r} rounds "
                f"(an intermittent leak): {', '.join(stepped[:5])}"
            )
    if grew_bytes:
        shown = ", ".join(row.type for row in grew_bytes[:5])
        failures.append(
            f"{len(grew_bytes)} type(s) grew in bytes on every measured round "
            f"(objects growing in place): {shown}"
        )
    for key, allowed, what in (
        ("fds", opts.allow_fds, "open file descriptors"),
        ("threads", opts.allow_threads, "threads"),
    ):
        found = deltas.get(key)
        if found is None:
            continue
        shape = shape_of(found, 1)
        if sum(found) > allowed and shape.kind != "levelled":
            failures.append(f"{what} grew by {sum(found)} over {r} rounds (allowed {allowed})")
        elif shape.kind == "levelled" and sum(found) > allowed:
            noise.append(shape.describe(what))
        elif any(found):
            noise.append(f"{what}: {signed(found)}")
    tasks = deltas["tasks"]
    shape = shape_of(tasks, opts.min_growth)
    if shape.kind == "steady":
        failures.append(f"pending asyncio tasks grew on every round (+{sum(tasks)})")
    elif shape.leaks:
        failures.append(shape.describe("pending asyncio tasks"))
    elif any(tasks):
        noise.append(f"asyncio tasks: {signed(tasks)}")
    if churn is not None:
        at, shape = churn
        what = "bytes malloc'd (objects over 512 B, buffers)"
        if failures or grew or grew_bytes:
            failures.insert(at, shape.describe(what))
        else:
            noise.insert(
                0,
                f"malloc'd bytes rose in steps of one small chunk ({shape.highs} new highs "
                f"in {shape.rounds} rounds, +{shape.net}) while the runs started threads, "
                "with no block, type or resource growing: glibc's per-thread caches and "
                "the thread tables, not counted alone",
            )
    if readings.census_error is not None:
        noise.append(f"census unavailable: {readings.census_error}")
    return GrowthReport(
        label=label,
        warmup=w,
        rounds=r,
        deltas=deltas,
        failures=failures,
        grew=grew[:MAX_TOP],
        ignored=skipped[:MAX_TOP],
        noise=noise[: opts.top + 8],
        sites=list(readings.sites),
        census=readings.census and readings.census_error is None,
        tracing=readings.traced is not None,
        seconds=seconds,
        grew_bytes=grew_bytes[:MAX_TOP],
        net=_net(readings),
    )


def _net(readings: Readings) -> dict[str, int]:
    """fds, threads and tasks from the first reading to the last (warmup included)."""
    last = readings.warmup + readings.rounds
    out: dict[str, int] = {}
    for key, values in (
        ("fds", readings.fds),
        ("threads", readings.threads),
        ("tasks", readings.tasks),
    ):
        if values is not None and len(values) > last:
            out[key] = values[last] - values[0]
    return out


def type_tier(name: str) -> int:
    """0 for the program's and its packages' types, 1 stdlib classes, 2 C internals, 3 builtins."""
    if "." not in name:
        return 3  # int, dict, function: a builtin says least about who leaks
    root = name.split(".", 1)[0]
    if root.startswith("_"):
        return 2  # _thread.lock, _io.TextIOWrapper: the parts of something bigger
    if root in _STDLIB:
        return 1  # logging.FileHandler: tells more than its locks and files
    return 0


_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ()))
