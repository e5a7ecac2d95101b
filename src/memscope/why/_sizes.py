"""What an object costs: everything it reaches (deep) and what only it keeps alive (retained).

explain() measures with the deep walk the snapshot sections use (``collectors/_deep.py``):
the deep set is walked forward from the object a level at a time with
``gc.get_referents``, with the str keys that dicts do not show the gc; it stops at
modules, their namespaces, classes and the roots explain() names (which the object never
owns). The retained set is then found the way the cycle collector finds garbage, inside
the deep set only: each object's reference count minus the references coming from inside
the set is what holds it from outside; objects held from outside, and everything they
reach inside the set, would survive. The rest would be freed if the object's referrers
let it go. This is exact for references that types traverse (every builtin container,
instance, closure and frame), needs no list of roots (a reference from C, such as an
atexit callback, still counts as "outside"), and costs a pass over the deep set instead
of over the heap. No user code runs (no Python ``__sizeof__``, ``repr`` or ``==``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..collectors._deep import deep_size, namespaces

__all__ = ["Sizes", "measure"]


@dataclass(frozen=True)
class Sizes:
    """Deep and retained totals of one object."""

    deep_bytes: int
    deep_objects: int
    retained_bytes: int
    retained_objects: int
    complete: bool  # False: the deadline came first, the numbers are lower bounds


def measure(target: object, stop: set[int], deadline: float) -> Sizes:
    """Deep and retained sizes of ``target``; ``stop`` holds ids never walked into."""
    found = deep_size(target, deadline=deadline, max_objects=10**9, stop=stop | namespaces())
    if found.truncated or found.retained_bytes is None or found.retained_objects is None:
        return Sizes(found.deep_bytes, found.deep_objects, 0, 0, False)
    return Sizes(
        found.deep_bytes,
        found.deep_objects,
        found.retained_bytes,
        found.retained_objects,
        True,
    )
