"""Cyclic garbage an import of memscope's made: held so that no leak check counts it.

Importing a module can leave cycles nothing holds: ``dataclass(slots=True)`` drops the
class it replaced, an enum's class body leaves its ``auto()`` values behind. It is real
garbage, but memscope's: ``memscope.find_leaks`` imports ``memscope.why`` at its first
use, and its first collection would report what that import left as the program's
cycles. :func:`watch` wraps such an import (the collector is off meanwhile, so all it
makes stays young), finds the garbage among the objects it made by the collector's own
rule (what nothing outside them holds), and keeps it here; the check's first collection
takes it (:func:`take_ids`) and lets it go uncounted.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["take_ids", "watch"]

# what the import garbage of memscope's own modules can come to, with room; above it
# nothing more is held (and a check counts it, as it would without this module)
MAX_HELD = 5_000
_held: list[object] = []


@contextmanager
def watch() -> Iterator[None]:
    """Hold the cyclic garbage made inside the block (an import), for :func:`take_ids`."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        before = {id(obj) for obj in gc.get_objects(generation=0)}
        yield
        found = _unreachable(_new_since(before))
        if len(_held) + len(found) <= MAX_HELD:
            _held.extend(found)
    finally:
        if enabled:
            gc.enable()


def take_ids() -> set[int]:
    """Let go of the held garbage; the ids it had (each stays valid until a collection)."""
    ids = {id(obj) for obj in _held}
    _held.clear()
    return ids


def _new_since(before: set[int]) -> list[object]:
    """The young objects whose ids ``before`` has not, but for this bookkeeping's own."""
    new: list[object] = []
    # a loop, not a comprehension: its closure would be one more new object
    for obj in gc.get_objects(generation=0):
        if id(obj) not in before and obj is not new and obj is not before:
            new.append(obj)
    return new


def _unreachable(new: list[object]) -> list[object]:
    """The objects of ``new`` that only other objects of ``new`` refer to, even indirectly."""
    index = {id(obj): i for i, obj in enumerate(new)}
    inner = _inner_refs(new, index)
    reached = [False] * len(new)
    todo = []
    for i in range(len(new)):
        # the two references this line adds: the list's and getrefcount's argument
        if sys.getrefcount(new[i]) - 2 - inner[i] > 0:
            reached[i] = True
            todo.append(i)
    while todo:
        for ref in gc.get_referents(new[todo.pop()]):
            j = index.get(id(ref))
            if j is not None and not reached[j]:
                reached[j] = True
                todo.append(j)
    return [new[i] for i in range(len(new)) if not reached[i]]


def _inner_refs(new: list[object], index: dict[int, int]) -> list[int]:
    """How many references each object of ``new`` gets from the others (its own frame)."""
    counts = [0] * len(new)
    for obj in new:
        for ref in gc.get_referents(obj):
            j = index.get(id(ref))
            if j is not None:
                counts[j] += 1
    return counts
