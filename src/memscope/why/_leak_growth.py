"""Steady growth: types, containers and tracked objects that grew at every census.

Each census counts the gc-tracked objects by type (one C pass over ``gc.get_objects()``,
right after a collection, so garbage does not look like growth), the lengths of the
longest containers found at the start (by the census walk of ``collectors/``, once), and
the len of every tracked object. Between censuses only numbers are kept, in dicts of ints
that the gc does not track, so the bookkeeping of the check never grows itself and is
never counted. The followed containers are held until the growing ones have been named,
then let go; sizes and holders are read once, at the end, for what grew.
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import compress, zip_longest
from typing import TYPE_CHECKING, Any

from .._base import tracking
from .._base.collector import HeapRequest
from .._base.units import type_name
from .._snapshot import Snapshot
from ..collectors._heap import scan_heap
from ..collectors._holders import describe_owners, summarize_container
from ..collectors._safe import base_len
from ._leak_cycles import size_of
from ._leak_report import Growth

if TYPE_CHECKING:
    from ..monitor import Monitor
    from ..monitor._trends import Fit

__all__ = ["GrowthWatch", "history_growth"]

_SAMPLES = 3  # newest instances of a growing type whose holders are named
_CONTAINERS = 50  # the longest containers followed from census to census
_INDEX = re.compile(r"\[\d+\]")


class GrowthWatch:
    """Counts at each census, and the rule: grew at every one."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.types: list[dict[int, int]] = []  # id(type) -> live count, one dict a census
        self.type_names: dict[int, str] = {}
        self.boxes: list[dict[int, int]] = []  # id(container) -> its length
        self.tracked: list[dict[str, int]] = []  # tracked name -> its len
        self.held: list[object] = []  # the longest containers at the start, until the end

    def start(self, ignore: set[int]) -> None:
        """Find the longest containers (one walk of the heap), to follow from now on;
        ``ignore`` holds ids of the check's own lists."""
        self.release()
        scan = scan_heap(HeapRequest(complete=False, containers=_CONTAINERS, where=False))
        self.held = [obj for _, _, obj in scan.containers if id(obj) not in ignore]
        scan.release()
        # what a census does the first time fills caches (Counter's isinstance(map,
        # Mapping) adds weak references to the ABCs' caches): done once here, before the
        # first census counts, so that it never looks like growth of the second
        Counter(map(type, ()))
        _tracked_lens()

    def census(self, now: float) -> None:
        """Count every gc-tracked type, the followed containers, and the tracked objects."""
        # a Counter of types in C; kept as a dict of ints, which the gc does not track
        tally = Counter(map(type, gc.get_objects()))
        names = self.type_names
        counts: dict[int, int] = {}
        for tp, count in tally.items():
            tid = id(tp)
            counts[tid] = count
            if tid not in names:
                names[tid] = type_name(tp)
        tally.clear()
        self.types.append(counts)
        lengths: dict[int, int] = {}
        for obj in self.held:
            n = base_len(obj)
            if n is not None:
                lengths[id(obj)] = n
        self.boxes.append(lengths)
        self.tracked.append(_tracked_lens())
        self.times.append(now)

    def release(self) -> None:
        """Let go of the followed containers."""
        self.held = []

    def growing(self, limit: int) -> list[Growth]:
        """The rows that grew at every census, largest growth first, at most ``limit`` each."""
        try:
            if len(self.times) < 2:
                return []
            kinds = [self._types(limit), self._containers(limit), self._tracked(limit)]
            # at most ``limit`` in all, taken from each kind in turn, each largest first
            rows = [row for group in zip_longest(*kinds) for row in group if row is not None]
            return rows[:limit]
        finally:
            self.release()

    def _rate(self, counts: tuple[int, ...]) -> float:
        span = self.times[-1] - self.times[0]
        return (counts[-1] - counts[0]) / span if span > 0 else 0.0

    def _types(self, limit: int) -> list[Growth]:
        grew = _steady(self.types)
        grew.sort(key=lambda kv: kv[1][-1] - kv[1][0], reverse=True)
        grew = grew[:limit]
        if not grew:
            return []
        where, sizes = _where_types({tid for tid, _ in grew})
        return [
            Growth(
                "type",
                self.type_names.get(tid, "?"),
                counts,
                self._rate(counts),
                sizes.get(tid, 0),
                where.get(tid, ""),
            )
            for tid, counts in grew
        ]

    def _containers(self, limit: int) -> list[Growth]:
        grew = _steady(self.boxes)
        grew.sort(key=lambda kv: kv[1][-1] - kv[1][0], reverse=True)
        grew = grew[:limit]
        if not grew:
            return []
        wanted = {oid for oid, _ in grew}
        targets = [obj for obj in self.held if id(obj) in wanted]
        try:
            where = describe_owners(targets, {id(self.held), id(targets)})
        except Exception:  # a hint is optional
            where = {}
        info = {id(obj): (summarize_container(obj), size_of(obj)) for obj in targets}
        targets.clear()
        rows = []
        for oid, counts in grew:
            summary, size = info.get(oid, ("container", 0))
            rows.append(
                Growth("container", summary, counts, self._rate(counts), size, where.get(oid, ""))
            )
        return rows

    def _tracked(self, limit: int) -> list[Growth]:
        grew = _steady(self.tracked)
        grew.sort(key=lambda kv: kv[1][-1] - kv[1][0], reverse=True)
        grew = grew[:limit]
        if not grew:
            return []
        wanted = {name for name, _ in grew}
        targets = {name: obj for name, obj, _ in tracking.tracked_objects() if name in wanted}
        found = list(targets.values())
        try:
            hints = describe_owners(found, {id(targets), id(found)})
        except Exception:  # a hint is optional
            hints = {}
        where = {name: hints.get(id(obj), "") for name, obj in targets.items()}
        targets.clear()
        found.clear()
        return [
            Growth("tracked", name, counts, self._rate(counts), 0, where.get(name, ""))
            for name, counts in grew
        ]


def _steady(series: list[dict[Any, int]]) -> list[tuple[Any, tuple[int, ...]]]:
    """Keys present at every census whose value grew from each census to the next."""
    if len(series) < 2:
        return []
    out = []
    for key, first in series[0].items():
        counts = [first]
        for census in series[1:]:
            value = census.get(key)
            if value is None or value <= counts[-1]:
                break
            counts.append(value)
        else:
            out.append((key, tuple(counts)))
    return out


def _tracked_lens() -> dict[str, int]:
    lens: dict[str, int] = {}
    for name, obj, _ in tracking.tracked_objects():
        # a built-in base's C length, or the len of memscope's own guard objects: a user
        # class's __len__ is user code, which the check never runs
        n = base_len(obj)
        if n is None and type_name(type(obj)).startswith("memscope."):
            try:
                n = len(obj)  # type: ignore[arg-type]
            except Exception:  # contained: that object just has no series
                n = None
        if type(n) is int:
            lens[name] = n
    obj = None
    return lens


def _where_types(wanted: set[int]) -> tuple[dict[int, str], dict[int, int]]:
    """id(type) -> who holds the newest instances, and id(type) -> bytes of all of them.

    The gc lists survivors of the last collection at the end of the oldest generation, so
    the newest instances come last.
    """
    samples: dict[int, list[object]] = {tid: [] for tid in wanted}
    sizes: dict[int, int] = dict.fromkeys(wanted, 0)
    everything = gc.get_objects()
    mine = list(compress(everything, map(wanted.__contains__, map(id, map(type, everything)))))
    everything = []
    for obj in mine:
        sizes[id(type(obj))] += size_of(obj)
    for obj in reversed(mine):
        found = samples[id(type(obj))]
        if len(found) < _SAMPLES:
            found.append(obj)
    obj = None
    mine = []
    targets = [o for found in samples.values() for o in found]
    ours = {id(samples), id(targets)} | {id(found) for found in samples.values()}
    try:
        hints = describe_owners(targets, ours)
    except Exception:  # a hint is optional
        hints = {}
    where: dict[int, str] = {}
    for tid, found in samples.items():
        parts: list[str] = []
        shapes: set[str] = set()
        for o in found:
            text = hints.get(id(o))
            # the newest instances sit at neighbouring indexes of one list: one hint says it
            shape = _INDEX.sub("[i]", text) if text else ""
            if text and shape not in shapes:
                shapes.add(shape)
                parts.append(text)
        if parts:
            where[tid] = "; ".join(parts[:2])
        found.clear()
    targets.clear()
    return where, sizes


# -- steady growth over a Monitor's history -------------------------------------------------

_TYPE_METRIC = "census.type:"
_TRACKED_METRIC = "tracked:"
_OWN_HOLDER = "instance of memscope.monitor."  # a Monitor's history deque


def history_growth(monitor: Monitor, limit: int) -> tuple[list[Growth], int]:
    """Rows for what grew steadily over ``monitor``'s kept history, and how many snapshots.

    Types and tracked objects are the steady ones of ``monitor.trends()``; containers
    (the longest ones of each deep snapshot, followed by their id) get the same fit and
    the same rule. A type must also have steadily more instances (not only more bytes).
    The history is memscope's own and grows until it is full: the plain types its
    snapshots are made of, memscope's own types, a Monitor's len and its history deque are
    left out. At most ``limit`` rows, taken from the three kinds in turn.
    """
    from ..monitor._trends import fit  # the Monitor's own rule for "steady"

    snaps = sorted(monitor.snapshots(), key=lambda s: s.timestamp)
    if len(snaps) < 2:
        return [], len(snaps)
    types: list[Growth] = []
    tracked: list[Growth] = []
    for trend in monitor.trends(top=None):
        if not trend.steady:
            continue
        if trend.metric.startswith(_TYPE_METRIC):
            name = trend.metric[len(_TYPE_METRIC) :]
            if name in _PLAIN or name.startswith("memscope."):
                continue
            ts: list[float] = []
            counts: list[int] = []
            for snap in snaps:
                n = _row(snap, "census", "by_type", "type", name).get("count")
                if type(n) is int:
                    ts.append(snap.timestamp)
                    counts.append(n)
            # a type grows when its instances multiply (not only its bytes)
            if not fit(ts, counts).steady:
                continue
            size = _row(snaps[-1], "census", "by_type", "type", name).get("size_bytes")
            types.append(
                Growth(
                    "type",
                    name,
                    (counts[0], counts[-1]),
                    trend.per_hour / 3600.0,
                    size if type(size) is int else 0,
                    unit=trend.unit,
                    span_seconds=trend.span_seconds,
                    source="history",
                )
            )
        elif trend.metric.startswith(_TRACKED_METRIC):
            name = trend.metric[len(_TRACKED_METRIC) :]
            last = _row(snaps[-1], "tracked", "objects", "name", name)
            if str(last.get("type", "")).startswith("memscope.monitor."):
                continue  # a Monitor's len is its history: bounded by ``history``
            ends = _ends(snaps, "tracked", "objects", "name", name, "len")
            tracked.append(
                Growth(
                    "tracked",
                    name,
                    ends,
                    trend.per_hour / 3600.0,
                    0,
                    unit=trend.unit,
                    span_seconds=trend.span_seconds,
                    source="history",
                )
            )
    types.sort(key=lambda g: g.per_second, reverse=True)
    kinds = [types[:limit], _history_containers(snaps, fit)[:limit], tracked[:limit]]
    rows = [row for group in zip_longest(*kinds) for row in group if row is not None]
    return rows[:limit], len(snaps)


# what the history's own snapshots are made of: over a history, their counts tell more
# about the history (memscope's, bounded) than about the program; a growing container of
# them is the container rows'
_PLAIN = frozenset(
    ("dict", "list", "tuple", "str", "int", "float", "bool", "bytes", "NoneType", "set")
)


def _row(snap: Snapshot, section: str, table: str, key: str, name: str) -> Mapping[str, Any]:
    return next((r for r in _table(snap, section, table) if r.get(key) == name), {})


def _table(snap: Snapshot, section: str, table: str) -> list[Mapping[str, Any]]:
    found = snap.sections.get(section)
    rows = found.get(table) if found is not None else None
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def _ends(
    snaps: list[Snapshot], section: str, table: str, key: str, name: str, field: str
) -> tuple[int, ...]:
    """``field`` of the row named ``name`` in the first and the last snapshot that have it."""
    values = [
        value
        for snap in snaps
        for row in _table(snap, section, table)
        if row.get(key) == name and type(value := row.get(field)) is int
    ]
    return (values[0], values[-1]) if values else ()


def _history_containers(snaps: list[Snapshot], fit: Callable[..., Fit]) -> list[Growth]:
    """The followed containers whose length grew steadily, largest rate first."""
    series: dict[object, tuple[list[float], list[float], Mapping[str, Any]]] = {}
    for snap in snaps:
        for row in _table(snap, "containers", "top"):
            length = row.get("length")
            if type(length) is not int or str(row.get("where", "")).startswith(_OWN_HOLDER):
                continue
            ts, ys, _ = series.get(row.get("id"), ([], [], row))
            ts.append(snap.timestamp)
            ys.append(float(length))
            series[row.get("id")] = (ts, ys, row)  # the newest row names it
    rows: list[Growth] = []
    for ts, ys, row in series.values():
        verdict = fit(ts, ys)
        if not verdict.steady:
            continue
        size = row.get("size_bytes")
        rows.append(
            Growth(
                "container",
                str(row.get("summary") or row.get("key") or "container"),
                (int(ys[0]), int(ys[-1])),
                verdict.slope,
                size if type(size) is int else 0,
                str(row.get("where") or ""),
                span_seconds=verdict.span_seconds,
                source="history",
            )
        )
    rows.sort(key=lambda g: g.per_second, reverse=True)
    return rows
