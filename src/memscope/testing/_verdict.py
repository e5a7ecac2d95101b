"""The no-growth verdict: a pure function from readings and options to a GrowthReport."""

from __future__ import annotations

from collections.abc import Sequence

from ._options import MAX_TOP, CheckOptions, ignore_predicate
from ._readings import Readings, TypeReadings
from ._report import GrowthReport, TypeGrowth

__all__ = ["verdict"]

# a size can step up twice by chance (a dict resizing): in-place growth needs 3 rounds
_MIN_ROUNDS_IN_PLACE = 3


def _steps(series: Sequence[int], readings: Readings) -> list[int]:
    w, r = readings.warmup, readings.rounds
    return [series[i] - series[i - 1] for i in range(w + 1, w + r + 1)]


def _row(tr: TypeReadings, deltas: Sequence[int], unit: str = "objects") -> TypeGrowth:
    return TypeGrowth(
        type=tr.type,
        deltas=list(deltas),
        count=tr.count,
        size_bytes_delta=tr.size_bytes_delta,
        unit=unit,
    )


def _signed(values: Sequence[int]) -> str:
    return " ".join(f"{v:+d}" for v in values)


def verdict(readings: Readings, opts: CheckOptions, *, label: str, seconds: float) -> GrowthReport:
    """Apply the leak rules to ``readings``: no I/O, no gc, no clock, same input same report.

    Memory (blocks, a type's count, a type's bytes) and pending tasks leak only when they
    grew on every measured round; fds and threads leak on any net growth over the allowance.
    """
    w, r = readings.warmup, readings.rounds
    measured = range(w + 1, w + r + 1)
    ignored = ignore_predicate(opts.ignore)
    deltas: dict[str, list[int]] = {
        "blocks": [readings.blocks_before[i] - readings.blocks_after[i - 1] for i in measured],
    }
    if readings.fds is not None:
        deltas["fds"] = _steps(readings.fds, readings)
    if readings.threads is not None:
        deltas["threads"] = _steps(readings.threads, readings)
    deltas["tasks"] = _steps(readings.tasks, readings)
    if readings.traced is not None:
        deltas["traced_bytes"] = _steps(readings.traced, readings)

    grew: list[TypeGrowth] = []
    grew_bytes: list[TypeGrowth] = []
    skipped: list[TypeGrowth] = []
    changed: list[tuple[int, str, list[int]]] = []
    for tr in readings.types:
        steps = list(tr.deltas)
        if all(step >= opts.min_growth for step in steps):
            row = _row(tr, steps)
            (skipped if ignored(row.type) else grew).append(row)
        elif r >= _MIN_ROUNDS_IN_PLACE and all(s >= opts.min_growth_bytes for s in tr.size_deltas):
            # as many objects, but bigger every round: a buffer, str or list growing in
            # place (bytearray +=, text +=) leaks without a new object or block
            row = _row(tr, tr.size_deltas, unit="bytes")
            (skipped if ignored(row.type) else grew_bytes).append(row)
        elif any(steps):
            changed.append((sum(abs(s) for s in steps), tr.type, steps))
    grew.sort(key=lambda row: (-sum(row.deltas), row.type))
    grew_bytes.sort(key=lambda row: (-sum(row.deltas), row.type))
    skipped.sort(key=lambda row: (-sum(row.deltas), row.type))
    changed.sort(key=lambda item: (-item[0], item[1]))
    noise = [f"{name}: {_signed(steps)}" for _, name, steps in changed[: opts.top]]

    failures: list[str] = []
    blocks = deltas["blocks"]
    if all(d >= opts.min_growth for d in blocks):
        if skipped and not grew:
            noise.insert(0, "allocated blocks grew every round, explained by ignored types")
        else:
            failures.append(
                f"allocated blocks grew on every measured round (+{sum(blocks)} in {r} rounds)"
            )
    elif any(blocks):
        noise.insert(0, f"allocated blocks: {_signed(blocks)}")
    if grew:
        shown = ", ".join(row.type for row in grew[:5])
        failures.append(f"{len(grew)} type(s) grew on every measured round: {shown}")
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
        if sum(found) > allowed:
            failures.append(f"{what} grew by {sum(found)} over {r} rounds (allowed {allowed})")
        elif any(found):
            noise.append(f"{what}: {_signed(found)}")
    tasks = deltas["tasks"]
    if all(d >= opts.min_growth for d in tasks):
        failures.append(f"pending asyncio tasks grew on every round (+{sum(tasks)})")
    elif any(tasks):
        noise.append(f"asyncio tasks: {_signed(tasks)}")
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
    )
