"""What an object costs: everything it reaches (deep) and what only it keeps alive (retained).

The deep set is walked forward from the object with ``gc.get_referents``; it stops at
modules and their namespaces (roots, which the object never owns) and does not follow an
instance's reference to its own class. The retained set is then found the way the
cycle collector finds garbage, inside the deep set only: each object's reference count
minus the references coming from inside the set is what holds it from outside; objects
held from outside, and everything they reach inside the set, would survive. The rest
would be freed if the object's referrers let it go. This is exact for references that
types traverse (every builtin container, instance, closure and frame), needs no list of
roots (a reference from C, such as an atexit callback, still counts as "outside"), and
costs a pass over the deep set instead of over the heap.
"""

from __future__ import annotations

import gc
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._labels import is_a, mro

__all__ = ["Sizes", "measure"]

_CHECK_EVERY = 4096
_HAVE_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC
_GC_HEADER = sys.getsizeof([]) - [].__sizeof__()
_METHOD_DESCRIPTOR = type(object.__sizeof__)
_WRAPPER_DESCRIPTOR = type(object.__init__)


@dataclass(frozen=True)
class Sizes:
    """Deep and retained totals of one object."""

    deep_bytes: int
    deep_objects: int
    retained_bytes: int
    retained_objects: int
    complete: bool  # False: the deadline came first, the numbers are lower bounds


def _sizer(tp: type) -> Callable[[object], int]:
    """A size function for instances of ``tp`` that never calls a Python ``__sizeof__``."""
    for klass in mro(tp):
        fn = type.__dict__["__dict__"].__get__(klass, type).get("__sizeof__")
        if fn is None:
            continue
        if type(fn) in (_METHOD_DESCRIPTOR, _WRAPPER_DESCRIPTOR):
            if klass is tp or all(
                "__sizeof__" not in type.__dict__["__dict__"].__get__(k, type)
                for k in mro(tp)[: mro(tp).index(klass)]
            ):
                return sys.getsizeof
            extra = _GC_HEADER if type.__dict__["__flags__"].__get__(tp, type) & _HAVE_GC else 0
            return _c_sizer(fn, extra)
    return sys.getsizeof


def _c_sizer(fn: Any, extra: int) -> Callable[[object], int]:
    """Size by the C ``__sizeof__`` under a Python override, plus the gc header."""

    def size(obj: object) -> int:
        return int(fn(obj)) + extra

    return size


def _size(obj: object, cache: dict[type, Callable[[object], int]]) -> int:
    tp = type(obj)
    fn = cache.get(tp)
    if fn is None:
        fn = cache[tp] = _sizer(tp)
    try:
        return int(fn(obj))
    except Exception:  # a C __sizeof__ can still fail (a half-built object): count 0
        return 0


def _stops(obj: object) -> bool:
    # modules are roots, never owned by what refers to them
    return type(obj) is types.ModuleType or is_a(obj, types.ModuleType)


def measure(target: object, stop: set[int], deadline: float) -> Sizes:
    """Deep and retained sizes of ``target``; ``stop`` holds ids never walked into."""
    objs: dict[int, object] = {id(target): target}
    order: list[object] = [target]
    internal: dict[int, int] = {}  # id -> references from inside the deep set
    complete = True
    get_referents = gc.get_referents
    i = 0
    ref: object = None
    obj: object = None
    while i < len(order):
        if i % _CHECK_EVERY == 0 and time.monotonic() > deadline:
            complete = False
            break
        obj = order[i]
        i += 1
        own_type = type(obj)
        for ref in get_referents(obj):
            rid = id(ref)
            if rid not in objs:
                if rid in stop or ref is own_type or _stops(ref):
                    continue
                objs[rid] = ref
                order.append(ref)
            internal[rid] = internal.get(rid, 0) + 1
    # a loop variable still bound would count as a reference from outside
    ref = obj = None
    cache: dict[type, Callable[[object], int]] = {}
    sizes = {oid: _size(o, cache) for oid, o in objs.items()}
    deep_bytes = sum(sizes.values())
    if not complete:
        objs.clear()
        order.clear()
        return Sizes(deep_bytes, len(sizes), 0, 0, False)
    # how many references our own bookkeeping holds to each object, measured on a sentinel
    # that only one local variable holds, in the very same expression
    sentinel = object()
    objs[id(sentinel)] = sentinel
    order.append(sentinel)
    counts = [sys.getrefcount(o) for o in order]
    ours = counts[-1] - 1
    order.pop()
    del objs[id(sentinel)], sentinel
    outside: list[object] = []
    for o, count in zip(order, counts):
        if o is target:
            continue  # by definition its referrers let it go
        if count - ours - internal.get(id(o), 0) > 0:
            outside.append(o)
    # everything an outside-held object reaches inside the set survives too
    alive = {id(o) for o in outside}
    while outside:
        o = outside.pop()
        for ref in get_referents(o):
            rid = id(ref)
            if rid in objs and rid not in alive and ref is not target:
                alive.add(rid)
                outside.append(ref)
    retained = [oid for oid in objs if oid not in alive]
    retained_bytes = sum(sizes[oid] for oid in retained)
    objs.clear()
    order.clear()
    return Sizes(deep_bytes, len(sizes), retained_bytes, len(retained), True)
