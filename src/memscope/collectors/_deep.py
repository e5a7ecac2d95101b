"""The deep walk: what an object reaches (deep) and what only it keeps alive (retained).

Shared by the ``tracked``, ``containers`` and ``large_objects`` collectors. The walk
(:func:`deep_size`) follows ``gc.get_referents`` a level at a time, adds the str keys a
dict does not show the gc, stops at modules, their namespaces and classes, and finds the
retained part inside the deep set by reference counts: an object with more references
than the set (and the caller's own bookkeeping, ``held``) gives it is held from outside,
and so is all it reaches. It runs no user code, keeps no reference once it returns, and
is bounded by a deadline and an object budget; a cut walk says so and its deep size is a
lower bound. :func:`measure_rows` sizes the rows of a section within one time budget.
"""

from __future__ import annotations

import gc
import sys
import time
import types
import weakref
from collections import Counter
from collections.abc import Mapping
from functools import partial
from itertools import compress, repeat
from operator import lt, sub
from typing import Any, NamedTuple

from .._base.collector import snapshot_depth
from .._base.section import Change
from .._base.units import format_bytes
from ._heap import HeapScan, _python_sizeof, _scope, _shallow_size

__all__ = [
    "DeepSize",
    "deep_changes",
    "deep_note",
    "deep_size",
    "deep_words",
    "held_by_scans",
    "measure_rows",
    "namespaces",
    "scan_rows_sizes",
]

_NOTHING_HELD: Mapping[int, int] = {}
_CHUNK = 50_000  # objects of a level walked between two looks at the clock


class DeepSize(NamedTuple):
    """What one object reaches (deep) and what only it keeps alive (retained)."""

    deep_bytes: int  # a lower bound when truncated
    deep_objects: int
    retained_bytes: int | None  # None when the walk was cut short
    truncated: bool
    retained_objects: int | None = None  # None when the walk was cut short


def namespaces() -> set[int]:
    """Ids of every module's namespace and of sys.modules: a deep walk never enters them."""
    found = {id(sys.modules)}
    for module in list(sys.modules.values()):
        if issubclass(type(module), types.ModuleType):
            try:
                found.add(id(_MODULE_DICT.__get__(module)))
            except Exception:  # a half-initialised module
                continue
    return found


_MODULE_DICT: Any = vars(types.ModuleType)["__dict__"]  # a module's namespace, no hooks
_SKIP: dict[type, bool] = {}


def _skipped(tp: type) -> bool:
    """Modules and classes are shared by everything: never part of an object's size."""
    found = _SKIP.get(tp)
    if found is None:
        found = issubclass(tp, (type, types.ModuleType))
        if len(_SKIP) < 100_000:
            _SKIP[tp] = found
    return found


def _size(obj: object) -> int:
    try:
        if _python_sizeof(type(obj)):
            return _shallow_size(obj)  # a __sizeof__ written in Python is user code
        return sys.getsizeof(obj)
    except Exception:
        return 0


_dict_keys: Any = dict.keys  # unbound: a subclass's keys() is never called
_STR_ONLY = {str}


def _referents(level: list[object]) -> list[object]:
    """What ``level`` refers to, with the str keys of dicts (the gc does not show those)."""
    refs = gc.get_referents(*level)
    for obj in compress(level, map(issubclass, map(type, level), repeat(dict))):
        keys = list(_dict_keys(obj))
        # a dict of str keys only keeps a table that hides the keys from the gc; a dict
        # with any other key shows them all already
        if keys and set(map(type, keys)) == _STR_ONLY:
            refs.extend(keys)
    return refs


def deep_size(
    obj: object,
    *,
    deadline: float,
    max_objects: int,
    stop: set[int] | None = None,
    held: Mapping[int, int] | None = None,
) -> DeepSize:
    """Deep and retained bytes of ``obj``; ``stop`` holds ids never walked into.

    ``held`` maps ids to the references the caller itself holds (a scan's lists of the
    objects it kept): those never count as holding an object from outside.
    """
    # Every step is a C-level pass over a whole level (map, compress, Counter, set and dict
    # algebra). Most objects of a container are referenced once, by it: their reference
    # count says so, and they can neither be met twice nor be held from outside, so they
    # are sized and walked without being remembered; only shared objects are kept by id
    # (as _heap's census does).
    stop = namespaces() if stop is None else stop
    single_max = _single_max()
    shared: dict[int, object] = {id(obj): obj}  # objects with more than one reference
    internal: Counter[int] = Counter()  # id -> references to it from inside the deep set
    frontier: list[object] = [obj]
    deep_bytes = sum(_sizes(frontier))
    count = 1
    truncated = False
    while frontier:
        # a level can be a million objects (the items of one big dict): it is walked in
        # chunks, so that the deadline and the object budget can cut inside it
        following: list[object] = []
        for start in range(0, len(frontier), _CHUNK):
            if time.monotonic() > deadline:
                truncated = True
                break
            found = _step(frontier[start : start + _CHUNK], single_max, shared, internal, stop)
            room = max_objects - count
            if len(found) > room:
                del found[max(room, 0) :]
                truncated = True
            count += len(found)
            deep_bytes += sum(_sizes(found))
            following += found
            del found
            if truncated:
                break
        frontier = following
        del following
        if truncated:
            break
    frontier = []
    alive = None
    if not truncated:
        alive = _held_from_outside(
            obj, shared, internal, single_max, _NOTHING_HELD if held is None else held, deadline
        )
    shared.clear()
    if alive is None:  # the deadline came first, in the walk or in the count
        return DeepSize(deep_bytes, count, None, True)
    alive_bytes, alive_objects = alive
    return DeepSize(deep_bytes, count, deep_bytes - alive_bytes, False, count - alive_objects)


def _single_max() -> int:
    """The count sys.getrefcount reports, in a list read by map(), for an object one
    other reference holds."""
    probe = [object()]
    return next(map(sys.getrefcount, probe)) + 1


def _step(
    level: list[object],
    single_max: int,
    shared: dict[int, object],
    internal: Counter[int],
    stop: set[int],
) -> list[object]:
    """The objects ``level`` refers to that the walk has not met: the next level."""
    refs = _referents(level)
    counts = list(map(sys.getrefcount, refs))
    singles = list(compress(refs, map(single_max.__ge__, counts)))
    many = list(compress(refs, map(single_max.__lt__, counts)))
    del refs, counts
    ids = list(map(id, many))
    internal.update(ids)
    fresh = dict(zip(ids, many))
    del ids, many
    new = fresh.keys() - shared.keys() - stop
    found = list(map(fresh.__getitem__, new))
    fresh.clear()
    del new
    if any(map(_skipped, set(map(type, found)))):
        found = [o for o in found if not _skipped(type(o))]
    shared.update(zip(map(id, found), found))
    if any(map(_skipped, set(map(type, singles)))):
        singles = [o for o in singles if not _skipped(type(o))]
    singles.extend(found)
    return singles


def _sizes(objs: list[object]) -> list[int]:
    """sys.getsizeof of each, in one C pass when no type has a Python ``__sizeof__``."""
    if not any(map(_python_sizeof, set(map(type, objs)))):
        try:
            return list(map(sys.getsizeof, objs))
        except Exception:  # a C __sizeof__ that fails (a half-built object): one at a time
            pass
    return list(map(_size, objs))


def _held_from_outside(
    target: object,
    shared: dict[int, object],
    internal: Counter[int],
    single_max: int,
    held: Mapping[int, int],
    deadline: float,
) -> tuple[int, int] | None:
    """Bytes and objects of the deep set that something outside it keeps alive (not
    through target); None when the deadline comes first."""
    # a shared object with more references than the set gives it is held from outside;
    # the references this function holds, measured on a sentinel held the same way
    sentinel = object()
    shared[id(sentinel)] = sentinel
    values = list(shared.values())
    counts = list(map(sys.getrefcount, values))
    ours = counts.pop() - 1  # the name ``sentinel`` is not held the same way
    values.pop()
    del shared[id(sentinel)], sentinel
    ids = list(map(id, values))
    outer = map(sub, counts, map(internal.__getitem__, ids))
    if held:
        outer = map(sub, outer, map(held.get, ids, repeat(0)))
    level = [o for o in compress(values, map(partial(lt, ours), outer)) if o is not target]
    del counts, values, ids
    alive = set(map(id, level))
    alive_bytes = sum(_sizes(level))
    alive_objects = len(level)
    target_id = id(target)
    while level:
        if time.monotonic() > deadline:
            return None
        refs = _referents(level)
        level = []
        counts = list(map(sys.getrefcount, refs))
        # held once, by an object that survives: it survives too
        singles = list(compress(refs, map(single_max.__ge__, counts)))
        if any(map(_skipped, set(map(type, singles)))):
            singles = [o for o in singles if not _skipped(type(o))]
        many = list(compress(refs, map(single_max.__lt__, counts)))
        del refs, counts
        fresh = dict(zip(map(id, many), many))
        del many
        new = fresh.keys() & shared.keys()
        new -= alive
        new.discard(target_id)
        alive |= new
        singles.extend(map(fresh.__getitem__, new))
        fresh.clear()
        alive_bytes += sum(_sizes(singles))
        alive_objects += len(singles)
        level = singles
        del singles
    return alive_bytes, alive_objects


def scan_rows_sizes(
    deep: bool | None,
    rows: list[dict[str, Any]],
    objects: list[object],
    scan: HeapScan,
    *,
    seconds: float,
    max_objects: int,
) -> dict[str, Any]:
    """The deep part of a scan section's rows: measured when ``deep`` is True, or when it is
    None and the snapshot is deep; ``{}`` otherwise. Empties ``objects`` when done."""
    if not (deep if deep is not None else snapshot_depth.get() == "deep"):
        objects.clear()
        return {}
    try:
        return measure_rows(
            rows,
            objects,
            seconds=seconds,
            max_objects=max_objects,
            held=held_by_scans(scan),
            scan=scan,
        )
    finally:
        objects.clear()


def measure_rows(
    rows: list[dict[str, Any]],
    objects: list[object],
    *,
    seconds: float,
    max_objects: int,
    held: Mapping[int, int] | None = None,
    scan: HeapScan | None = None,
) -> dict[str, Any]:
    """Deep and retained bytes of ``objects[i]`` into ``rows[i]``, in order, within
    ``seconds`` for them all; what the section says about the work: ``deep_rows`` (rows
    measured in full), ``deep_cut`` (a budget cut some), ``deep_seconds``.

    With ``scan`` (which holds every object measured), a row another section of the same
    snapshot measured is copied, not walked again (a dict in both the containers and the
    large objects).

    ``objects`` is a list only the caller holds (each entry is one reference of ours);
    ``held`` adds the references the caller's other structures hold. A row the budget
    did not reach gets ``deep_bytes`` and ``retained_bytes`` None; a row cut inside its
    walk gets a lower-bound ``deep_bytes`` and ``retained_bytes`` None.
    """
    start = time.monotonic()
    deadline = start + seconds
    ours: Counter[int] = Counter(map(id, objects))
    if held:
        ours.update(held)
    stop = namespaces()
    budget = max_objects
    measured = 0
    cut = copied_cut = False
    done = _measured_in(scan) if scan is not None else {}
    for i, row in enumerate(rows):
        again = done.get(id(objects[i]))
        if again is not None:  # the same walk with the same budget would say the same
            row.update(again)
            measured += not again["deep_truncated"]
            copied_cut = copied_cut or bool(again["deep_truncated"])
            continue
        if cut or time.monotonic() > deadline:
            cut = True
            row.update(deep_bytes=None, retained_bytes=None, deep_truncated=True)
            continue
        try:
            found = deep_size(
                objects[i], deadline=deadline, max_objects=budget, stop=stop, held=ours
            )
        except Exception as exc:  # contained: the row says why it has no deep size
            row.update(deep_bytes=None, retained_bytes=None, deep_truncated=True)
            row["deep_error"] = f"{type(exc).__name__}: {exc}"
            continue
        budget = max(budget - found.deep_objects, 1)
        measured += not found.truncated
        row["deep_bytes"] = found.deep_bytes
        row["deep_objects"] = found.deep_objects
        row["retained_bytes"] = found.retained_bytes
        row["deep_truncated"] = found.truncated
        cut = found.truncated
        if len(done) < 1_000:
            done[id(objects[i])] = {k: row[k] for k in _DEEP_KEYS}
    ours.clear()
    stop.clear()
    return {
        "deep_seconds": round(time.monotonic() - start, 4),
        "deep_rows": measured,
        "deep_cut": cut or copied_cut,
    }


def held_by_scans(scan: HeapScan) -> Counter[int]:
    """id -> references the heap scans of this snapshot hold (their kept objects' lists)."""
    scope = _scope.get()
    scans = {id(scan): scan}
    if scope is not None:
        scans.update((id(s), s) for s in scope.scans.values())
    found: Counter[int] = Counter()
    for each in scans.values():
        # each kept object sits in one tuple of its list, and in the samples' dict
        found.update(id(entry[-1]) for entry in each.containers)
        found.update(id(entry[-1]) for entry in each.large)
        found.update(map(id, (each.samples or {}).values()))
    scans.clear()
    return found


def deep_words(row: Mapping[str, Any]) -> str:
    """`` retains 79.4 MiB`` for a measured row, `` reaches >=1.0 GiB`` for a cut one."""
    retained = row.get("retained_bytes")
    if isinstance(retained, int):
        return f" retains {format_bytes(retained)}"
    deep = row.get("deep_bytes")
    if isinstance(deep, int):
        return f" reaches >={format_bytes(deep)}"
    return ""


def deep_note(section: Mapping[str, Any], rows: int) -> list[str]:
    """A last summary line when the time budget cut the deep sizes short."""
    if not section.get("deep_cut"):
        return []
    return [
        f"(retained sizes: {section.get('deep_rows', 0)} of {rows} rows measured in "
        f"{section.get('deep_seconds', 0.0):.2f} s; the budget cut the rest)"
    ]


def deep_changes(
    section: str, table: str, pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> list[Change]:
    """Deep and retained bytes of paired rows, only where both were measured in full (a
    cheap snapshot's row has no retained size, which is not a retained size of 0)."""
    out: list[Change] = []
    for old, new in pairs:
        if old.get("deep_truncated") or new.get("deep_truncated"):
            continue  # a walk the budget cut gives only a lower bound
        for field in ("retained_bytes", "deep_bytes"):
            a, b = old.get(field), new.get(field)
            if type(a) is int and type(b) is int and a != b:
                out.append(Change(section, f"{table}[{new.get('key')}].{field}", a, b, "bytes"))
    return out


_DEEP_KEYS = ("deep_bytes", "deep_objects", "retained_bytes", "deep_truncated")
# id(scan) -> (the scan, weakly; id(obj) -> its deep keys): what this snapshot's sections
# measured already (in full or as far as the budget let them). A scan holds the objects
# it kept until it is released, so their ids stay theirs; entries go with their scans
_BY_SCAN: dict[int, tuple[weakref.ref[HeapScan], dict[int, dict[str, Any]]]] = {}


def _measured_in(scan: HeapScan) -> dict[int, dict[str, Any]]:
    """The rows measured in full so far on ``scan``'s objects, by id."""
    for key, (ref, _) in list(_BY_SCAN.items()):
        if ref() is None:
            _BY_SCAN.pop(key, None)
    entry = _BY_SCAN.get(id(scan))
    if entry is None or entry[0]() is not scan:
        if len(_BY_SCAN) >= 16:  # live scans nobody releases: forget the oldest
            _BY_SCAN.pop(next(iter(_BY_SCAN)), None)
        entry = _BY_SCAN[id(scan)] = (weakref.ref(scan), {})
    return entry[1]
