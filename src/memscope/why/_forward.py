"""The heap near the roots, walked forward once, so explain() needs fewer heap passes.

explain() climbs from the object up its referrers, and every level of that climb costs a
pass over the whole heap (``gc.get_referrers``). Most of the way from a root down to an
object is near the roots, where the graph is small: the module namespaces, classes,
threads' frames and tasks, and what they hold a few references down. :class:`Near` walks
that part forward, level by level, from every root at once (a breadth-first search from
all of them, so an object's level is its distance from the nearest root), for about the
time one backward pass takes. Where the backward climb meets an object of a forward level,
the rest of the chain is known; and when the forward levels are complete to depth ``D``,
``B`` backward levels prove that no chain shorter than ``B + D + 1`` references was
missed (every such chain has an object within ``D`` of its root and within ``B`` of the
target), so the climb stops far earlier.

A level is found in C: ``gc.get_referents(*level)`` for the whole level at once, then
only what the gc tracks (an int or a str holds nothing and is never a referrer). A level
is indexed by id and deduplicated in C; the items of a wide container (a module-level
list of 100k entries) are kept as a plain list, looked into by identity
for the few objects the climb asks about, and its next level is again found in C. Either
way each level holds every object at its distance from the roots, which is all the proof
needs.
"""

from __future__ import annotations

import functools
import gc
import itertools
import operator
import sys
import time
from collections.abc import Iterable

__all__ = ["EVERYTHING", "Near", "all_classes"]

EVERYTHING = 1 << 30  # ``Near.complete`` when the forward walk reached everything

# at most this many objects indexed over all levels (about 100 bytes each, transient)
_INDEX_TOTAL = 300_000
# a wide level is turned into an id set once a climb asks about more objects than this
_SCAN_LIMIT = 16
_CHUNK = 256
# the forward walk's time, per allocated block: about two backward passes (one pass took
# 25-30 ms on a 1.1M-object, 4M-block heap on the 2-core development machine)
_PASS_SECONDS_PER_BLOCK = 2.0e-8


def all_classes(limit: int = 200_000) -> list[type]:
    """Every class alive, through ``__subclasses__`` from ``object`` (no heap pass)."""
    found: list[type] = []
    seen: set[int] = {id(object)}
    stack: list[type] = [object]
    while stack and len(found) < limit:
        cls = stack.pop()
        try:
            subs: list[type] = type.__subclasses__(cls)
        except TypeError:
            continue
        for sub in subs:
            if id(sub) not in seen:
                seen.add(id(sub))
                found.append(sub)
                stack.append(sub)
    return found


class Near:
    """Forward levels from every root: level ``d`` holds what is ``d`` references away."""

    def __init__(self, sources: Iterable[object], deadline: float) -> None:
        self.depth_of: dict[int, int] = {}  # id -> level, for the indexed part of a level
        self.levels: list[list[object]] = []  # the indexed part of each level
        self.wide: list[list[object]] = []  # the items of wide containers, not indexed
        self.complete = -1  # levels 0..complete hold everything at their distance
        self.seconds = 0.0
        self._wide_ids: dict[int, set[int]] = {}
        self._build(sources, deadline)

    def ids(self) -> set[int]:
        """Ids of every container this object made (a referrer search must skip them)."""
        made = [self.depth_of, self.levels, self.wide, self._wide_ids, *self.levels, *self.wide]
        return set(map(id, made))

    def _build(self, sources: Iterable[object], deadline: float) -> None:
        started = time.monotonic()
        budget = max(0.01, sys.getallocatedblocks() * _PASS_SECONDS_PER_BLOCK)
        stop = min(deadline, started + budget)
        depth_of = self.depth_of
        level = list({id(o): o for o in sources}.values())
        depth_of.update(dict.fromkeys(map(id, level), 0))
        self.levels.append(level)
        self.wide.append([])
        self.complete = 0
        wide: list[object] = []
        while (level or wide) and time.monotonic() < stop:
            # a wide container's items are kept as they are, not indexed; what they hold
            # (often nothing the gc tracks) joins the next level, indexed
            bulky = [o for o in level if _is_wide(o)]
            narrow = [o for o in level if not _is_wide(o)] if bulky else level
            found = _containers(narrow)
            found += _containers(wide)
            next_wide = _containers(bulky)
            if len(depth_of) + len(found) > _INDEX_TOTAL:
                break  # too wide to index: the levels so far stand
            # new objects only, by id, all in C: no Python code runs per object
            by_id = dict(zip(map(id, found), found))
            found.clear()
            fresh = by_id.keys() - depth_of.keys()
            d = len(self.levels)
            depth_of.update(dict.fromkeys(fresh, d))
            level = list(map(by_id.__getitem__, fresh))
            by_id.clear()
            wide = next_wide
            self.levels.append(level)
            self.wide.append(wide)
            self.complete = d
        if not level and not wide:
            self.complete = EVERYTHING  # no level further: every distance is known
        self.seconds = time.monotonic() - started

    def depth(self, obj: object, asked: int = 1) -> int | None:
        """The level ``obj`` is at (its distance from the nearest root), if it is near.

        ``asked`` is how many objects the caller is about to ask about: past a few, a wide
        level is looked into by an id set made once, not scanned for each.
        """
        found = self.depth_of.get(id(obj))
        for d, items in enumerate(self.wide):
            if found is not None and d >= found:
                break
            if items and self._in_wide(d, items, obj, asked):
                return d
        return found

    def _in_wide(self, d: int, items: list[object], obj: object, asked: int) -> bool:
        ids = self._wide_ids.get(d)
        if ids is None and asked > _SCAN_LIMIT:
            ids = self._wide_ids[d] = set(map(id, items))
        if ids is not None:
            return id(obj) in ids
        return any(map(operator.is_, items, itertools.repeat(obj)))

    def path(self, obj: object, d: int, skip: set[int]) -> list[object] | None:
        """Objects from a root (level 0) down to ``obj`` at level ``d``, root first."""
        path = [obj]
        child = obj
        for above in range(d - 1, -1, -1):
            holder = _holder_in(self.levels[above], child, skip)
            if holder is None:
                holder = _holder_in(self.wide[above], child, skip)
            if holder is None:
                return None
            path.append(holder)
            child = holder
        path.reverse()
        return path

    def release(self) -> None:
        """Drop every object the levels hold."""
        self.depth_of.clear()
        self.levels.clear()
        self.wide.clear()
        self._wide_ids.clear()


# builtin containers whose len() is their number of references (and runs no user code)
_BULK = frozenset({list, tuple, dict, set, frozenset})
_WIDE = 2_000
# issubclass(type(obj), type) in C: a class's own type is a real type, so no __class__
# property or __subclasscheck__ of user code runs (isinstance() would ask __class__)
_IS_METATYPE = functools.partial(type.__subclasscheck__, type)


def _is_wide(obj: object) -> bool:
    return type(obj) in _BULK and len(obj) > _WIDE  # type: ignore[arg-type]


def _containers(objs: list[object]) -> list[object]:
    """What ``objs`` refer to that the gc tracks, classes left out (they are all level 0)."""
    if not objs:
        return []
    found = list(filter(gc.is_tracked, gc.get_referents(*objs)))
    keep = map(operator.not_, map(_IS_METATYPE, map(type, found)))
    return list(itertools.compress(found, keep))


def _holder_in(level: list[object], child: object, skip: set[int]) -> object | None:
    """An object of ``level`` that refers to ``child`` (chunks of the level in C)."""
    same = operator.is_
    for start in range(0, len(level), _CHUNK):
        chunk = level[start : start + _CHUNK]
        if not any(map(same, gc.get_referents(*chunk), itertools.repeat(child))):
            continue
        for holder in chunk:
            if id(holder) in skip:
                continue
            if any(map(same, gc.get_referents(holder), itertools.repeat(child))):
                return holder
    return None
