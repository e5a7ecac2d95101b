"""Trends over a Monitor's history: a least-squares fit per series and the rule for "steady"."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._base.units import format_value
from .._snapshot import Snapshot

__all__ = [
    "MIN_POINTS",
    "MIN_R_SQUARED",
    "STEP_FACTOR",
    "Fit",
    "Trend",
    "fit",
    "series_of",
    "trends_of",
]

# the rule for "steady", stated in docs/monitor.md: change one, change the doc
MIN_POINTS = 6  # fewer samples cannot tell a line from a step or from noise
MIN_R_SQUARED = 0.9  # the line explains at least 90% of the variance
STEP_FACTOR = 2.0  # the line's residuals are at most half those of the best single step
LATE_FRACTION = 0.25  # the newer half still grows at a quarter of the overall rate or more

# a count is ranked as 64 bytes, as compare() does (memscope._diff), so one list orders both
_RANK_WEIGHT = {"bytes": 1.0, "count": 64.0}
_HOUR = 3600.0


@dataclasses.dataclass(frozen=True)
class Fit:
    """A least-squares line through (t, y) and how well it, and a single step, explain y."""

    slope: float  # units per second
    r_squared: float
    sse_line: float
    sse_step: float
    samples: int
    span_seconds: float
    late_slope: float  # the slope of the newer half of the samples
    steady: bool
    reason: str  # why not steady ("" when steady)


def _line(ts: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    stt = sum((t - mt) ** 2 for t in ts)
    if stt == 0:
        return 0.0, my
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / stt
    return slope, my - slope * mt


def _best_step_sse(ys: Sequence[float]) -> float:
    """Residuals of the best one-step model (a mean before a break, another after)."""
    n = len(ys)
    best = math.inf
    total = sum(ys)
    total_sq = sum(y * y for y in ys)
    left = left_sq = 0.0
    for k in range(1, n):  # break after k samples: prefix sums keep this O(n)
        left += ys[k - 1]
        left_sq += ys[k - 1] ** 2
        right, right_sq = total - left, total_sq - left_sq
        sse = (left_sq - left * left / k) + (right_sq - right * right / (n - k))
        best = min(best, max(sse, 0.0))
    return best


def fit(
    timestamps: Sequence[float], values: Sequence[float], *, min_points: int = MIN_POINTS
) -> Fit:
    """Fit a line to the series and apply the steady rule (pure: numbers in, verdict out)."""
    if len(timestamps) != len(values):
        raise ValueError(
            f"timestamps and values differ in length: {len(timestamps)}, {len(values)}"
        )
    n = len(values)
    if n == 0:
        return Fit(0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, False, "no samples")
    t0 = timestamps[0]
    ts = [t - t0 for t in timestamps]  # epoch seconds squared lose precision
    ys = [float(v) for v in values]
    span = max(ts) - min(ts)
    slope, intercept = _line(ts, ys) if n >= 2 else (0.0, ys[0])
    my = sum(ys) / n
    sst = sum((y - my) ** 2 for y in ys)
    sse_line = sum((y - (intercept + slope * t)) ** 2 for t, y in zip(ts, ys))
    r2 = 1.0 - sse_line / sst if sst > 0 else 0.0
    sse_step = _best_step_sse(ys) if n >= 2 else 0.0
    half = n // 2
    late_slope = _line(ts[half:], ys[half:])[0] if n - half >= 2 else 0.0
    reason = ""
    if n < max(min_points, 3):
        reason = f"too few samples ({n} < {max(min_points, 3)})"
    elif span <= 0:
        reason = "no time span"
    elif slope <= 0 or sst == 0:
        reason = "not growing"
    elif sse_line * STEP_FACTOR > sse_step and (
        r2 >= MIN_R_SQUARED or sse_step <= (1.0 - MIN_R_SQUARED) * sst
    ):
        # named a step only when one step explains the series well; else it is noise
        reason = "a step, not a slope"
    elif r2 < MIN_R_SQUARED:
        reason = f"noisy (R² {r2:.2f} < {MIN_R_SQUARED})"
    elif late_slope < LATE_FRACTION * slope:
        reason = "levelling off"
    return Fit(slope, r2, sse_line, sse_step, n, span, late_slope, not reason, reason)


@dataclasses.dataclass(frozen=True)
class Trend:
    """Growth of one metric over a window: rate per hour and whether it is steady."""

    metric: str
    per_hour: float
    steady: bool
    unit: str
    span_seconds: float
    samples: int
    r_squared: float = 0.0
    reason: str = ""  # why it is not steady ("" when it is)
    title: str = ""  # how str() names the metric (the metric itself when empty)

    @property
    def rank(self) -> float:
        """Growth per hour on one scale: bytes, with a count weighted as 64 bytes."""
        return self.per_hour * _RANK_WEIGHT.get(self.unit, 1.0)

    def __str__(self) -> str:
        rate = format_value(self.per_hour, self.unit, signed=True)
        if self.unit != "bytes":
            rate = _count_rate(self.per_hour)
        verdict = "steady" if self.steady else f"not steady: {self.reason}"
        name = self.title or self.metric
        return f"{name} {rate}/h over the last {_span(self.span_seconds)}, {verdict}"


def _count_rate(per_hour: float) -> str:
    if abs(per_hour) >= 100 or per_hour == int(per_hour):
        return f"{per_hour:+,.0f}"
    return f"{per_hour:+.2f}"


def _span(seconds: float) -> str:
    if seconds >= _HOUR:
        return f"{seconds / _HOUR:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _rows(snap: Snapshot, section: str, table: str) -> Iterable[Mapping[str, Any]]:
    found = snap.sections.get(section)
    rows = found.get(table) if found is not None else None
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def series_of(
    snapshots: Iterable[Snapshot],
) -> dict[str, tuple[str, str, list[float], list[float]]]:
    """Every series the snapshots carry: metric -> (unit, title, timestamps, values)."""
    out: dict[str, tuple[str, str, list[float], list[float]]] = {}

    def add(metric: str, unit: str, title: str, t: float, value: object) -> None:
        number = _num(value)
        if number is None:
            return
        entry = out.get(metric)
        if entry is None:
            entry = out[metric] = (unit, title, [], [])
        entry[2].append(t)
        entry[3].append(number)

    for snap in snapshots:
        t = snap.timestamp
        process = snap.sections.get("process")
        if process is not None:
            add("rss_bytes", "bytes", "RSS", t, process.get("rss_bytes"))
        for row in _rows(snap, "census", "by_type"):
            name = row.get("type")
            add(f"census.type:{name}", "bytes", f"{name} objects", t, row.get("size_bytes"))
        for row in _rows(snap, "census", "by_module"):
            name = row.get("module")
            add(f"census.module:{name}", "bytes", f"module {name}", t, row.get("size_bytes"))
        for row in _rows(snap, "tracked", "objects"):
            name = row.get("name")
            add(f"tracked:{name}", "count", f"tracked {name} len", t, row.get("len"))
        tasks = snap.sections.get("tasks")
        if tasks is not None:
            add("tasks", "count", "asyncio tasks", t, tasks.get("count"))
        threads = snap.sections.get("threads")
        if threads is not None:
            add("threads", "count", "threads", t, threads.get("count"))
    return out


def trends_of(
    snapshots: Sequence[Snapshot], *, seconds: float | None = None, top: int | None = None
) -> list[Trend]:
    """Growing series of the snapshots (the last ``seconds`` of them), largest growth first."""
    snaps = sorted(snapshots, key=lambda s: s.timestamp)
    if seconds is not None and snaps:
        newest = snaps[-1].timestamp
        snaps = [s for s in snaps if newest - s.timestamp <= seconds]
    found: list[Trend] = []
    for metric, (unit, title, ts, ys) in series_of(snaps).items():
        if len(ys) < 2:
            continue
        result = fit(ts, ys)
        if result.slope <= 0:
            continue  # shrinking or flat: not growth
        found.append(
            Trend(
                metric=metric,
                per_hour=result.slope * _HOUR,
                steady=result.steady,
                unit=unit,
                span_seconds=result.span_seconds,
                samples=result.samples,
                r_squared=result.r_squared,
                reason=result.reason,
                title=title,
            )
        )
    found.sort(key=lambda tr: -tr.rank)
    return found if top is None else found[:top]
