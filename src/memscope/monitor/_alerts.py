"""Thresholds and alerts of the Monitor: metric readers, threshold parsing, the crossing rule."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._base.cgroup import memory_capacity_bytes
from .._base.units import format_value, parse_limit
from .._snapshot import Snapshot

__all__ = [
    "METRICS",
    "Alert",
    "Crossing",
    "parse_thresholds",
    "read_metric",
]

# metric name -> (unit, what it is); "tracked:<name>" is the one family of names
METRICS: dict[str, tuple[str, str]] = {
    "rss_bytes": ("bytes", "resident set size (process section)"),
    "gc_collections_per_minute": ("count", "gc collections per minute since the last snapshot"),
    "gc_pause_seconds_max": ("seconds", "longest gc pause since the last snapshot"),
    "objects_total": ("count", "live objects counted by the census (deep snapshots)"),
    "tasks": ("count", "asyncio tasks alive (tasks section)"),
}
TRACKED_PREFIX = "tracked:"
_ACCEPTED = ", ".join(repr(m) for m in METRICS) + f" or {TRACKED_PREFIX + '<name>'!r}"


@dataclasses.dataclass(frozen=True)
class Alert:
    """A metric that crossed its threshold: what, how much, the limit, which snapshot, when."""

    metric: str
    value: float
    threshold: float
    label: str | None
    timestamp: float

    @property
    def unit(self) -> str:
        """The metric's unit: bytes, seconds or count."""
        return unit_of_metric(self.metric)

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.timestamp))
        return (
            f"memscope alert: {self.metric} = {format_value(self.value, self.unit)} "
            f"crossed its threshold {format_value(self.threshold, self.unit)} "
            f"(snapshot {self.label or '?'} at {when})"
        )


def unit_of_metric(metric: str) -> str:
    """bytes, seconds or count."""
    known = METRICS.get(metric)
    return known[0] if known is not None else "count"


def parse_thresholds(
    thresholds: object, capacity: Callable[[], int | None] = memory_capacity_bytes
) -> dict[str, float]:
    """``thresholds`` checked, as numbers; "80%" of rss is of ``capacity()`` (cgroup, else RAM)."""
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise TypeError(
            f"thresholds must be a mapping of metric name to threshold or None, "
            f"got {type(thresholds).__name__}"
        )
    parsed: dict[str, float] = {}
    for metric, value in thresholds.items():
        if not isinstance(metric, str):
            raise TypeError(
                f"thresholds keys must be metric names (str): {_ACCEPTED}; "
                f"got {type(metric).__name__}"
            )
        name = f"thresholds[{metric!r}]"
        if metric == "rss_bytes":
            limit = parse_limit(name, value, capacity)
            assert limit is not None  # parse_limit returns None only for None, refused below
            parsed[metric] = float(limit)
            continue
        if metric not in METRICS and not (
            metric.startswith(TRACKED_PREFIX) and len(metric) > len(TRACKED_PREFIX)
        ):
            raise ValueError(f"thresholds: unknown metric {metric!r}; accepted: {_ACCEPTED}")
        parsed[metric] = _positive_number(name, value, unit_of_metric(metric))
    return parsed


def _positive_number(name: str, value: object, unit: str) -> float:
    what = "a number of seconds" if unit == "seconds" else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {what} > 0, got {type(value).__name__}")
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"{name} must be {what} > 0 (finite), got {value!r}")
    return number


def read_metric(metric: str, snap: Snapshot, previous: Snapshot | None) -> float | None:
    """The metric's value in ``snap`` (``previous`` for rates), or None when it is not there."""
    if metric == "rss_bytes":
        return _number(_section(snap, "process").get("rss_bytes"))
    if metric == "objects_total":
        return _number(_section(snap, "census").get("objects_total"))
    if metric == "tasks":
        return _number(_section(snap, "tasks").get("count"))
    if metric.startswith(TRACKED_PREFIX):
        wanted = metric[len(TRACKED_PREFIX) :]
        for row in _section(snap, "tracked").get("objects") or ():
            if isinstance(row, Mapping) and row.get("name") == wanted:
                return _number(row.get("len"))
        return None
    gc_now = _section(snap, "gc")
    gc_before = _section(previous, "gc") if previous is not None else {}
    if metric == "gc_collections_per_minute":
        now, before = (
            _number(gc_now.get("collections_total")),
            _number(gc_before.get("collections_total")),
        )
        dt = snap.timestamp - previous.timestamp if previous is not None else 0.0
        if now is None or before is None or dt <= 0 or now < before:
            return None
        return (now - before) * 60.0 / dt
    if metric == "gc_pause_seconds_max":
        return _interval_pause_max(gc_now, gc_before)
    return None


def _interval_pause_max(now: Mapping[str, Any], before: Mapping[str, Any]) -> float | None:
    # the gc section keeps the longest pause since the callback was installed: when that
    # grew, the new longest pause happened in this interval and is exact; otherwise the
    # interval's mean pause is what is known (a lower bound of its longest)
    max_now, max_before = (
        _number(now.get("pause_seconds_max")),
        _number(before.get("pause_seconds_max")),
    )
    if max_now is None:
        return None
    if max_before is None or max_now > max_before:
        return max_now
    total_now, total_before = (
        _number(now.get("pause_seconds_total")),
        _number(before.get("pause_seconds_total")),
    )
    count_now, count_before = _number(now.get("pauses_total")), _number(before.get("pauses_total"))
    if None in (total_now, total_before, count_now, count_before):
        return None
    pauses = count_now - count_before  # type: ignore[operator]
    if pauses <= 0:
        return 0.0
    return (total_now - total_before) / pauses  # type: ignore[operator]


def _section(snap: Snapshot | None, name: str) -> Mapping[str, Any]:
    section = None if snap is None else snap.sections.get(name)
    return section if section is not None else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Crossing:
    """The alert rule for one metric: fire once at ``value >= threshold``, re-arm below it.

    Pure (no I/O, no clock): ``update(value)`` says whether this reading fires. A missing
    reading (None) changes nothing. Not thread-safe; the Monitor serialises its calls.
    """

    __slots__ = ("armed", "threshold")

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.armed = True

    def update(self, value: float | None) -> bool:
        """True when this reading crosses the threshold while armed (then disarmed)."""
        if value is None:
            return False
        if value >= self.threshold:
            if self.armed:
                self.armed = False
                return True
            return False
        self.armed = True
        return False
