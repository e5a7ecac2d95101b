"""What only reference cycles keep alive, and what ``gc.garbage`` holds.

A collection made with ``gc.DEBUG_SAVEALL`` does all a collection does (weak references
cleared, ``__del__`` finalizers run, as in any collection) and then, instead of breaking
the cycles, appends every unreachable object to ``gc.garbage``. The check counts those by
type, puts ``gc.garbage`` back exactly as it was and restores the debug flags; it holds
what it found (so a later collection does not find it again) until its last collection,
then lets go and collects once more, which frees it all. Whatever that collection puts
back into ``gc.garbage`` is truly uncollectable (a legacy C finalizer in the cycle) and
is not counted as freed. A gc callback counts what other collections free meanwhile
(their types are not seen).
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import types
from collections import Counter
from typing import Any

from .._base import importwatch
from .._base.units import type_name
from ..collectors._heap import _python_sizeof, _shallow_size
from ._labels import edge_label, is_a, short_type

__all__ = ["AutoCounter", "CycleTally", "describe_cycle", "garbage_rows", "size_of"]

# one check at a time changes the gc's debug flags and gc.garbage
_lock = threading.Lock()
_CYCLE_SEARCH = 20_000  # objects a sample cycle's search may visit
_HELD_LEVELS = 4  # untracked containers inside untracked containers: a few levels at most


def size_of(obj: object) -> int:
    """``sys.getsizeof`` without running a ``__sizeof__`` written in Python (0 if it fails)."""
    try:
        if _python_sizeof(type(obj)):
            return _shallow_size(obj)
        return sys.getsizeof(obj)
    except Exception:  # a half-built object whose C __sizeof__ fails
        return 0


class AutoCounter:
    """A gc callback adding up what automatic collections free while the check runs."""

    def __init__(self) -> None:
        self.collected = 0
        self.uncollectable = 0
        self.ours = False  # set while the check's own collections run

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or self.ours:
            return
        collected = info.get("collected", 0)
        uncollectable = info.get("uncollectable", 0)
        self.collected += collected if type(collected) is int else 0
        self.uncollectable += uncollectable if type(uncollectable) is int else 0

    def install(self) -> None:
        """Add this callback to ``gc.callbacks``."""
        gc.callbacks.append(self)

    def remove(self) -> None:
        """Remove this callback (and only it) from ``gc.callbacks``."""
        callbacks = gc.callbacks
        for i in range(len(callbacks) - 1, -1, -1):
            if callbacks[i] is self:
                del callbacks[i]


def _new_items(garbage: list[Any], before: list[Any]) -> list[Any]:
    """What ``garbage`` gained since it was ``before`` (the gc only ever appends)."""
    n = len(before)
    if len(garbage) >= n and all(a is b for a, b in zip(garbage, before)):
        return garbage[n:]
    old = {id(o) for o in before}
    return [o for o in garbage if id(o) not in old]


class CycleTally:
    """The running count, by type, of what the check's collections freed."""

    def __init__(self, counter: AutoCounter) -> None:
        self.counter = counter
        self.by_type: dict[int, list[int]] = {}  # id(type) -> [count, own bytes]
        self.names: dict[int, str] = {}
        self.samples: dict[int, str] = {}  # id(type) -> a cycle in words
        self.objects = 0
        self.bytes = 0
        self.kept_by_debug_flags = 0  # saved in gc.garbage because the user set DEBUG_SAVEALL
        self.held: list[list[Any]] = []  # what the collections found, until finish()
        self.counted: dict[int, tuple[int, int]] = {}  # id -> (id(type), size) of the held

    def collect(self, *, last: bool) -> None:
        """A full collection that counts what only cycles kept alive.

        What it finds is held until the ``last`` one (or :meth:`finish`), which lets it all
        be freed by one more collection: two full collections for the whole check, not
        two a census, and nothing found twice.
        """
        garbage = gc.garbage
        with _lock:
            self.counter.ours = True
            try:
                flags = gc.get_debug()
                before = garbage[:]
                ours = importwatch.take_ids()  # what memscope's imports left: not counted
                if flags & gc.DEBUG_SAVEALL:
                    # the user asked the gc to keep everything: keep it there, and count it
                    gc.collect()
                    saved = [obj for obj in _new_items(garbage, before) if id(obj) not in ours]
                    self.kept_by_debug_flags += len(saved)
                else:
                    try:
                        gc.set_debug(flags | gc.DEBUG_SAVEALL)
                        gc.collect()
                    finally:
                        gc.set_debug(flags)
                        saved = _new_items(garbage, before)
                        garbage[:] = before
                    self.held.append(saved)  # all of it goes at finish(), ours too
                    if ours:
                        saved = [obj for obj in saved if id(obj) not in ours]
                self.counted.update(self._count(saved))
                saved = before = []
            finally:
                self.counter.ours = False
        if last:
            self.finish()

    def finish(self) -> None:
        """Let go of what the collections found, and collect it (once; then a no-op)."""
        if not self.held:
            return
        garbage = gc.garbage
        with _lock:
            self.counter.ours = True
            try:
                self.held.clear()
                before = garbage[:]
                gc.collect()  # now they are freed; a legacy finalizer's cycle comes back
                back = _new_items(garbage, before)
                before = []
                if back:
                    self._uncount(back, self.counted)
                back = []
            finally:
                self.counter.ours = False
                self.counted.clear()

    def _count(self, saved: list[Any]) -> dict[int, tuple[int, int]]:
        """Tally ``saved``; id(obj) -> (id(type), size) so the uncollectable can be taken out."""
        counted: dict[int, tuple[int, int]] = {}
        if not saved:
            return counted
        by_type = self.by_type
        for obj in saved:
            tp = type(obj)
            tid = id(tp)
            size = size_of(obj)
            row = by_type.get(tid)
            if row is None:
                by_type[tid] = [1, size]
                self.names[tid] = type_name(tp)
            else:
                row[0] += 1
                row[1] += size
            counted[id(obj)] = (tid, size)
            self.bytes += size
        obj = None
        self.objects += len(saved)
        self.bytes += held_bytes(saved)
        # a cycle in words for the largest group so far that has none yet
        top = max(by_type, key=lambda t: by_type[t][1])
        if top not in self.samples:
            start = next((o for o in saved if id(type(o)) == top), None)
            if start is not None:
                self.samples[top] = describe_cycle(start, {id(o) for o in saved})
            start = None
        return counted

    def _uncount(self, back: list[Any], counted: dict[int, tuple[int, int]]) -> None:
        """Take out what came back to gc.garbage, and what it keeps alive: never freed."""
        alive: list[Any] = [o for o in back if id(o) in counted]
        while alive:
            obj = alive.pop()
            found = counted.pop(id(obj), None)
            if found is None:
                continue
            alive.extend(r for r in gc.get_referents(obj) if id(r) in counted)
            tid, size = found
            row = self.by_type[tid]
            row[0] -= 1
            row[1] -= size
            self.objects -= 1
            self.bytes -= size
            if row[0] <= 0:
                del self.by_type[tid]
        obj = None


def held_bytes(holders: list[Any]) -> int:
    """Bytes of the untracked objects (strings, numbers, their tuples) only ``holders`` hold."""
    total = 0
    internal: dict[int, int] = {}  # id -> references from the holders and the freed found so far
    frontier = holders
    for _ in range(_HELD_LEVELS):
        refs = gc.get_referents(*frontier)
        found: dict[int, object] = {}
        for ref in refs:
            if gc.is_tracked(ref):
                continue  # a tracked one is either a holder itself or alive elsewhere
            rid = id(ref)
            internal[rid] = internal.get(rid, 0) + 1
            found[rid] = ref
        refs = []
        ref = None
        if not found:
            break
        # the references this function holds to each, measured on a sentinel held the same way
        sentinel = object()
        found[id(sentinel)] = sentinel
        counts = [sys.getrefcount(o) for o in found.values()]
        ours = counts[-1] - 1  # the local name sentinel is not held the same way
        del found[id(sentinel)], sentinel
        freed = [
            o for o, count in zip(found.values(), counts) if count - ours == internal.get(id(o), 0)
        ]
        found.clear()
        total += sum(map(size_of, freed))
        frontier = [o for o in freed if gc.get_referents(o)]
        freed = []
        if not frontier:
            break
    frontier = []
    return total


def describe_cycle(start: object, inside: set[int] | None) -> str:
    """The shortest cycle from ``start`` back to it through ``inside``, in words.

    ``inside=None``: through any object but classes and modules (bounded by a budget).
    """
    parent: dict[int, int] = {id(start): 0}
    keep: dict[int, object] = {id(start): start}
    queue: list[object] = [start]
    last: object = None
    i = 0
    try:
        while i < len(queue) and i < _CYCLE_SEARCH and last is None:
            node = queue[i]
            i += 1
            for ref in gc.get_referents(node):
                if ref is start:
                    last = node
                    break
                rid = id(ref)
                if rid in parent:
                    continue
                if inside is None:
                    if is_a(ref, type) or is_a(ref, types.ModuleType):
                        continue
                elif rid not in inside:
                    continue
                parent[rid] = id(node)
                keep[rid] = ref
                queue.append(ref)
            node = ref = None
        if last is None:
            return ""
        path = [last]
        while path[-1] is not start:
            path.append(keep[parent[id(path[-1])]])
        path.reverse()
        path.append(start)
        hops = [f"{short_type(a)}{edge_label(a, b)}" for a, b in itertools.pairwise(path)]
        if len(hops) > 8:
            hops = [*hops[:4], f"... {len(hops) - 6} more ...", *hops[-2:]]
        path = []
        return " -> ".join(hops) + f" -> (back to the first {short_type(start)})"
    finally:
        queue.clear()
        keep.clear()
        last = None


def garbage_rows() -> tuple[list[tuple[str, int, int, str]], int, int]:
    """(type, count, bytes, sample cycle) per type in ``gc.garbage``, largest first; totals."""
    items = gc.garbage[:]
    if not items:
        return [], 0, 0
    tally: Counter[int] = Counter()
    sizes: Counter[int] = Counter()
    names: dict[int, str] = {}
    first: dict[int, object] = {}
    for obj in items:
        tid = id(type(obj))
        tally[tid] += 1
        sizes[tid] += size_of(obj)
        if tid not in names:
            names[tid] = type_name(type(obj))
            first[tid] = obj
    obj = None
    order = sorted(tally, key=lambda t: (sizes[t], tally[t]), reverse=True)
    rows = []
    for n, tid in enumerate(order):
        sample = describe_cycle(first[tid], None) if n == 0 else ""
        rows.append((names[tid], tally[tid], sizes[tid], sample))
    first.clear()
    total = sum(sizes.values())
    count = len(items)
    items = []
    return rows, count, total
