"""One walk over the whole heap, shared by the census, containers and large_objects collectors.

The walk visits every gc-tracked object (``gc.get_objects()``) and then, unless
``complete=False``, every object reachable from them that the collector does not
track: strings, ints, bytes, floats, and the tuples and dicts that the gc untracked
because they hold only such values. Each live object is seen once.

Deduplication without a set of every id: an untracked object whose reference count
says exactly one reference points at it can only be reached once, so only objects
with more references go through the (small) ``seen`` set. That keeps the walk's own
memory a small fraction of the heap it scans.
"""

from __future__ import annotations

import contextvars
import gc
import heapq
import itertools
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import partial
from operator import ge, is_, lt, not_
from typing import Any

from .._base.collector import HeapRequest
from .._base.units import type_name
from ._frames import running_locals
from ._holder_paths import holder_paths
from ._holders import describe_owners, held_types, summarize_container
from ._safe import base_len, is_a

CHUNK = 10_000
SAMPLED_TYPES = 20  # the most numerous non-builtin types whose instances are told where
# (a bytearray is a buffer, not a container of items: large_objects shows the big ones)
CONTAINER_TYPES: tuple[type, ...] = (dict, list, set, frozenset, tuple, deque)


_EVERYTHING_COUNTED = HeapRequest(where=False)


@dataclass
class HeapScan:
    """What one walk found: per-type tallies, the largest containers, the large objects."""

    tally: dict[type, list[int]]  # type -> [count, size_bytes]
    gc_tracked: int
    untracked: int
    complete: bool
    seconds: float
    containers: list[tuple[int, int, object]] = field(default_factory=list)  # (len, size, obj)
    large: list[tuple[int, object]] = field(default_factory=list)  # (size, obj)
    where: dict[int, str] = field(default_factory=dict)  # id(obj) -> reachability hint
    # id(obj) -> holder path (None until the where-hints are made: no dict more per scan)
    paths: dict[int, dict[str, str | None]] | None = None
    request: HeapRequest = _EVERYTHING_COUNTED  # what the walk was asked to keep
    frozen: int = 0  # objects gc.freeze() moved out of gc.get_objects()'s sight
    sizeof_errors: int = 0  # objects whose __sizeof__ failed (counted with size 0)
    # one instance of each of the most numerous non-builtin types, whose holder path tells
    # where that type's instances live (kept only by scans that make where-hints)
    samples: dict[type, object] | None = None

    def release(self) -> None:
        """Drop the references to live objects this scan holds."""
        self.containers.clear()
        self.large.clear()
        if self.samples is not None:
            self.samples.clear()


# snapshot() opens a scope so that census, containers and large_objects share one walk; it
# holds the union of what the snapshot's scan collectors asked for, and the walks made
_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "memscope_heap_scope", default=None
)


class _Scope:
    __slots__ = ("request", "scans")

    def __init__(self, request: HeapRequest | None) -> None:
        self.request = request
        self.scans: dict[bool, HeapScan] = {}  # complete -> the walk


class shared_scans:
    """Context manager: heap scans asked for inside it run once, serving ``request`` too.

    ``request`` is the union of the scan collectors' :class:`HeapRequest` (snapshot()
    combines them), so the first walk keeps enough for every one of them.
    """

    def __init__(self, request: HeapRequest | None = None) -> None:
        self._request = request

    def __enter__(self) -> None:
        self._token = _scope.set(_Scope(self._request))

    def __exit__(self, *exc: object) -> None:
        scope = _scope.get()
        _scope.reset(self._token)
        for scan in (scope.scans if scope is not None else {}).values():
            scan.release()


def get_scan(request: HeapRequest) -> HeapScan:
    """A scan that answers ``request``, reusing the one taken in the current snapshot."""
    scope = _scope.get()
    if scope is None:
        return scan_heap(request)
    found = scope.scans.get(request.complete)
    if found is not None and found.request.covers(request):
        return found
    wanted = request
    if scope.request is not None and scope.request.complete == request.complete:
        wanted = scope.request.union(request)
    found = scope.scans[request.complete] = scan_heap(wanted)
    return found


def current_scan() -> HeapScan | None:
    """The walk the current snapshot has made already (the complete one first), or None.

    Never walks: a cheap collector that reads a deep snapshot's tallies uses this.
    """
    scope = _scope.get()
    if scope is None:
        return None
    return scope.scans.get(True) or scope.scans.get(False)


_UNSET: Any = object()
FAST_PATH = True  # tests turn it off to check both paths count the same


def _direct_sizer(tp: type, sample: object) -> tuple[Any, int] | None:
    """(tp.__sizeof__, constant) such that getsizeof(o) == tp.__sizeof__(o) + constant.

    None when that cannot be relied on: Python-level __sizeof__ (user code), or types
    whose gc header depends on the object (type objects).
    """
    if issubclass(tp, type):
        return None
    fn: Any = getattr(tp, "__sizeof__", None)
    if type(fn) not in (_METHOD_DESCRIPTOR, _WRAPPER_DESCRIPTOR):
        return None
    try:
        constant = sys.getsizeof(sample) - fn(sample)
    except Exception:
        return None
    if not isinstance(constant, int) or constant < 0:
        return None
    return fn, constant


_METHOD_DESCRIPTOR = type(object.__sizeof__)
_dict_keys: Any = dict.keys  # unbound, so it works on dict subclasses whose keys() is overridden
_WRAPPER_DESCRIPTOR = type(object.__init__)


_HAVE_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC


class _Plain:
    pass


# seeded with a class, so the cache is gc-tracked from import on (a dict holding only
# builtin types is not): gc.freeze() then freezes it with the rest of a test runner's
# heap, and the types it learns later are not walked by a census of what was made since
# (as new, they read as the code under test keeping those types: `type` +7 in one round)
_PYTHON_SIZEOF: dict[type, bool] = {_Plain: False}


# what sys.getsizeof adds to an instance's own size: the gc header (and, from 3.12, the
# pre-header of managed dicts), measured once on a plain instance
_GC_EXTRA = sys.getsizeof(_Plain()) - object.__sizeof__(_Plain())


def _python_sizeof(tp: type) -> bool:
    """Whether ``tp``'s ``__sizeof__`` is Python code (cached; found without lookup hooks)."""
    found = _PYTHON_SIZEOF.get(tp)
    if found is None:
        fn = None
        for klass in type.__dict__["__mro__"].__get__(tp):
            namespace = type.__dict__["__dict__"].__get__(klass)
            if "__sizeof__" in namespace:
                fn = namespace["__sizeof__"]
                break
        found = type(fn) not in (_METHOD_DESCRIPTOR, _WRAPPER_DESCRIPTOR)
        if len(_PYTHON_SIZEOF) < 100_000:  # bounded: one entry per type seen
            _PYTHON_SIZEOF[tp] = found
    return found


def _shallow_size(obj: object) -> int:
    """The object's own size from its type's layout, without calling its ``__sizeof__``."""
    size = object.__sizeof__(obj)
    return size + _GC_EXTRA if type(obj).__flags__ & _HAVE_GC else size


class _NumpyDescriptor:
    """``ndarray.dtype`` / ``ndarray.flat`` read from NumPy's C type, found when first needed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, arr: object) -> Any:
        numpy = sys.modules["numpy"]
        return type.__dict__["__dict__"].__get__(numpy.ndarray)[self.name].__get__(arr)


_NDARRAY_DTYPE = _NumpyDescriptor("dtype")
_NDARRAY_FLAT = _NumpyDescriptor("flat")


def _size_or_zero(obj: object) -> int:
    """sys.getsizeof, or -1 when the object's own __sizeof__ fails."""
    try:
        return sys.getsizeof(obj)
    except Exception:
        return -1


# one walk at a time in a process: two walks at once traverse each other's working lists
# (each several times the others' cost, and their memory adds up), so a second deep
# snapshot waits for the first and costs what it would cost after it
_walking = threading.RLock()


def _after_fork_in_child() -> None:
    global _walking
    _walking = threading.RLock()  # a walk of the parent's threads does not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def scan_heap(
    request: HeapRequest = _EVERYTHING_COUNTED,
    *,
    count_frozen: bool = True,
    current_frames: bool = True,
) -> HeapScan:
    """Walk the heap once; see the module docstring for what is covered (one walk at a time).

    ``count_frozen=False`` leaves ``frozen`` at 0: counting the permanent generation walks
    all of it (about 10 ms for a test runner's heap), which a caller that only wants the
    tally need not pay. ``current_frames=False`` leaves out the locals of the calling
    thread's running frames (see :func:`count_types`).
    """
    with _walking:
        return _scan_heap(request, count_frozen, current_frames)


def _scan_heap(
    request: HeapRequest, count_frozen: bool = True, current_frames: bool = True
) -> HeapScan:
    start = time.perf_counter()
    complete, containers, large_threshold, large_top, where = request
    objs = gc.get_objects()
    # objects moved to the permanent generation by gc.freeze() are not in get_objects();
    # listing them would mean unfreezing, which writes to every one of them (and so
    # copies every page a pre-fork server shares): they are reported as not covered
    frozen = gc.get_freeze_count() if count_frozen and hasattr(gc, "get_freeze_count") else 0
    getsizeof = sys.getsizeof
    getrefcount = sys.getrefcount
    is_tracked = gc.is_tracked
    get_referents = gc.get_referents

    # calibrate: the count an object has when only one heap reference and our list hold it
    probe = [object()]
    single_max = next(map(getrefcount, probe)) + 1
    del probe
    is_single = partial(ge, single_max)  # single_max >= refcount
    is_shared = partial(lt, single_max)

    tally: Counter[tuple[type, int]] = Counter()
    seen: set[int] = set()
    untracked = 0
    box_heap: list[tuple[int, int, int, object]] = []  # (len, size, seq, obj) min-heap
    large_heap: list[tuple[int, int, object]] = []  # (size, seq, obj) min-heap
    seq = itertools.count()
    container_floor = 1024  # bytes: smaller containers never make a top list worth showing
    large_min = large_threshold if large_threshold is not None else sys.maxsize

    no_floor = sys.maxsize

    runs: dict[type, list[int]] = {}  # type -> [count, size] from single-type batches
    dict_batches: list[list[object]] = []  # dicts accounted, whose str keys the next level adds
    object_arrays: list[object] = []  # NumPy object arrays accounted, whose items come next
    numpy = sys.modules.get("numpy")  # never imported here: no NumPy loaded, no arrays
    ndarray: Any = getattr(numpy, "ndarray", None) if numpy is not None else None
    if ndarray is not None and not isinstance(ndarray, type):
        ndarray = None
    sizeof_errors = [0]
    sizers: dict[type, tuple[Any, int] | None] = {}

    def sizer_of(tp: type, sample: object) -> tuple[Any, int] | None:
        found = sizers.get(tp, _UNSET)
        if found is _UNSET:
            found = sizers[tp] = _direct_sizer(tp, sample) if FAST_PATH else None
        return found  # type: ignore[no-any-return]

    def direct(tp: type, batch: list[object]) -> list[int] | None:
        """Raw sizes of a single-type batch via tp.__sizeof__, tallied; None if not possible."""
        sizer = sizer_of(tp, batch[0])
        if sizer is None:
            return None
        fn, offset = sizer
        try:
            raw = list(map(fn, batch))
            total = sum(raw) + offset * len(batch)
        except Exception:  # an odd __sizeof__: the caller takes the general path
            return None
        row = runs.get(tp)
        if row is None:
            runs[tp] = [len(batch), total]
        else:
            row[0] += len(batch)
            row[1] += total
        return raw

    # one instance per gc-tracked type, so the most numerous can be told where they live:
    # the last one listed (after a collection the youngest survivors come last, and of a
    # type that keeps growing, the young ones are the leak's)
    samples: dict[type, object] | None = {} if where else None

    def account(items: list[object]) -> None:
        if not items:
            return
        types = list(map(type, items))
        first = types[0]
        single = types.count(first) == len(types)
        if ndarray is not None:
            # a NumPy array of objects holds them without showing them to the gc
            present = {first} if single else set(types)
            if any(issubclass(tp, ndarray) for tp in present):
                object_arrays.extend(
                    o
                    for o, tp in zip(items, types)
                    if issubclass(tp, ndarray) and _NDARRAY_DTYPE.__get__(o).hasobject
                )
        # most batches hold one type (a level of ints, of strs, of tuples) or a few: then each
        # type's own __sizeof__ is called directly, with no per-object special-method lookup
        # and no (type, size) pairs to hash
        if single:
            raw = direct(first, items)
            if raw is not None:
                if issubclass(first, dict):
                    dict_batches.append(items)
                consider(items, raw, sizers[first][1])  # type: ignore[index]
                return
        else:
            present = set(types)
            kinds = present
            if len(kinds) > 4:
                # big mixed batches are mostly two or three types: split those out, by a sample
                sample = Counter(itertools.islice(types, 0, None, 61))
                kinds = {tp for tp, n in sample.most_common(3) if n * 61 * 8 >= len(types)}
            if kinds:
                pending: list[object] = []
                for tp in kinds:
                    batch = list(itertools.compress(items, map(is_, types, itertools.repeat(tp))))
                    raw = direct(tp, batch) if batch else []
                    if raw is None:
                        pending.extend(batch)  # counted the general way below
                    elif batch:
                        if issubclass(tp, dict):
                            dict_batches.append(batch)
                        consider(batch, raw, sizers[tp][1])  # type: ignore[index]
                if kinds != present:
                    pending.extend(
                        itertools.compress(items, map(not_, map(kinds.__contains__, types)))
                    )
                if not pending:
                    return
                items = pending
                types = list(map(type, items))
        shallow = [tp for tp in set(types) if _python_sizeof(tp)]
        if shallow:
            # a __sizeof__ written in Python is user code, and often deep (pandas counts
            # the arrays and strings a DataFrame holds, which the walk counts again): such
            # objects are sized by their own layout, like every other object
            sizes = [
                _shallow_size(o) if tp in shallow else _size_or_zero(o)
                for o, tp in zip(items, types)
            ]
            sizeof_errors[0] += sizes.count(-1)
            sizes = [0 if n < 0 else n for n in sizes]
        else:
            try:
                sizes = list(map(getsizeof, items))
            except Exception:  # a __sizeof__ that raises must not cost the whole scan
                sizes = [_size_or_zero(o) for o in items]
                sizeof_errors[0] += sizes.count(-1)
                sizes = [0 if n < 0 else n for n in sizes]
        tally.update(zip(types, sizes))
        # by the real type: isinstance() would read each object's __class__, user code
        dicts = list(itertools.compress(items, map(issubclass, types, itertools.repeat(dict))))
        if dicts:
            dict_batches.append(dicts)
        consider(items, sizes, 0)

    def consider(items: list[object], sizes: list[int], offset: int) -> None:
        """Offer the objects over the floor to the container and large-object top lists."""
        nonlocal container_floor, large_min
        floor = min(
            container_floor if containers else no_floor, large_min if large_top else no_floor
        )
        if floor == no_floor or max(sizes) + offset < floor:
            return
        # only the few objects over the floor reach Python-level code
        raw_floor = floor - offset
        for obj, raw in itertools.compress(zip(items, sizes), map(raw_floor.__le__, sizes)):
            size = raw + offset
            if size >= large_min and large_top:
                if len(large_heap) < large_top:
                    heapq.heappush(large_heap, (size, next(seq), obj))
                elif size > large_heap[0][0]:
                    heapq.heapreplace(large_heap, (size, next(seq), obj))
                    large_min = max(large_min, large_heap[0][0])
            if containers and size >= container_floor and is_a(obj, CONTAINER_TYPES):
                n = base_len(obj)  # the base type's own length: a subclass's __len__ is user code
                if n is None:
                    continue
                entry = (n, size, next(seq), obj)
                if len(box_heap) < containers:
                    heapq.heappush(box_heap, entry)
                elif n > box_heap[0][0]:
                    heapq.heapreplace(box_heap, entry)
                    # every container type costs at least 8 bytes an item
                    container_floor = max(container_floor, 8 * box_heap[0][0])

    def expand(frontier: list[object]) -> int:
        """Account every untracked object reachable from ``frontier``; how many there were."""
        found = 0
        while frontier:
            refs = get_referents(*frontier)
            if dict_batches:
                # a dict whose keys are all str does not show its keys to the gc (they
                # cannot form cycles), so they are fetched here; a str key of another
                # dict shows up twice in this level, and the shared path counts it once
                for batch in dict_batches:
                    keys: list[object] = list(itertools.chain.from_iterable(map(_dict_keys, batch)))
                    # one entry per key object: an interned key shared by many dicts comes
                    # once (dropped before refcounts are read, so it does not skew them)
                    unique = list(dict(zip(map(id, keys), keys)).values())
                    del keys
                    refs.extend(
                        itertools.compress(
                            unique, map(is_, map(type, unique), itertools.repeat(str))
                        )
                    )
                    del unique
                dict_batches.clear()
            if object_arrays:
                # the items of object arrays (a DataFrame's string columns): read by the
                # array's own C iterator, never by user code
                for arr in object_arrays:
                    refs.extend(_NDARRAY_FLAT.__get__(arr))
                object_arrays.clear()
            loose = list(itertools.filterfalse(is_tracked, refs))
            del refs
            if not loose:
                break
            counts = list(map(getrefcount, loose))
            fresh = list(itertools.compress(loose, map(is_single, counts)))
            # shared objects are the minority: only look for them when there are some
            shared = (
                list(itertools.compress(loose, map(is_shared, counts)))
                if len(fresh) < len(loose)
                else []
            )
            del loose, counts
            if shared:
                by_id = dict(zip(map(id, shared), shared))
                for key in seen.intersection(by_id):
                    del by_id[key]
                seen.update(by_id)
                fresh.extend(by_id.values())
                del by_id
            del shared
            found += len(fresh)
            account(fresh)
            frontier = fresh
            del fresh
        return found

    # the working lists live in expand()'s frame only, so none of them outlives its chunk
    # (a leftover list would show up as a holder in the where-hints)
    n_objs = len(objs)
    for i in range(0, n_objs, CHUNK):
        part = objs[i : i + CHUNK]
        if samples is not None:
            samples.update(zip(map(type, part), part))  # in C: the last of each type wins
        account(part)
        if complete:
            untracked += expand(part)
        dict_batches.clear()
        object_arrays.clear()
        del part

    # what only the locals of running frames hold (a loop's growing `buffer`): the gc
    # shows neither the frames nor their locals, so they are added here, named by frame
    frame_values: list[object] = []
    frame_hint: dict[int, str] = {}
    if complete or where:
        for value, hint, plain in running_locals(
            tasks=bool(where), labels=bool(where), current=current_frames
        ):
            if where:
                frame_hint.setdefault(id(value), hint)
            if plain:  # a cell variable's value is reached through its (tracked) cell
                frame_values.append(value)
    if complete and frame_values:
        # a value some container also holds was counted by the walk (its refcount made it
        # shared, so it is in `seen`); only the ones the walk never met are new
        extra = {id(v): v for v in frame_values if not is_tracked(v)}
        for key in seen.intersection(extra):
            del extra[key]
        seen.update(extra)
        fresh = list(extra.values())
        del extra
        untracked += len(fresh)
        account(fresh)
        untracked += expand(fresh)
        del fresh

    by_type: dict[type, list[int]] = runs
    for (tp, size), count in tally.items():
        row = by_type.get(tp)
        if row is None:
            by_type[tp] = [count, size * count]
        else:
            row[0] += count
            row[1] += size * count
    tally.clear()  # the closure holds these names: empty them rather than del
    sizers.clear()
    seen.clear()

    result = HeapScan(
        tally=by_type,
        gc_tracked=n_objs,
        frozen=frozen,
        sizeof_errors=sizeof_errors[0],
        untracked=untracked,
        complete=complete,
        seconds=0.0,
        containers=[(n, size, obj) for n, size, _, obj in sorted(box_heap, reverse=True)],
        large=[(size, obj) for size, _, obj in sorted(large_heap, reverse=True)],
    )
    box_heap.clear()
    large_heap.clear()
    del objs
    if samples is not None:
        numerous = sorted(
            ((row[0], i, tp) for i, (tp, row) in enumerate(by_type.items()) if tp in samples),
            reverse=True,
        )
        chosen = [tp for _, _, tp in numerous if "." in type_name(tp)][:SAMPLED_TYPES]
        result.samples = {tp: samples[tp] for tp in chosen}
        samples.clear()
        del numerous, chosen
    kept = list(result.samples.values()) if result.samples else []
    if where and (result.containers or result.large or kept):
        targets = [obj for _, _, obj in result.containers] + [obj for _, obj in result.large]
        targets += kept
        # the scan's own lists refer to the targets too: they are not where they live
        ours = {id(result.containers), id(result.large), id(targets), id(frame_values)}
        ours.update({id(result.samples), id(kept)})
        ours.update(map(id, result.containers))
        ours.update(map(id, result.large))
        try:
            # the walk up to a named root first; the cheap two-hop hint for the rest
            result.paths = holder_paths(targets, ours)
        except Exception:  # a hint is optional; never fail the scan for it
            result.paths = {}
        paths = result.paths
        rest = [t for t in targets if id(t) not in paths]
        try:
            result.where = describe_owners(rest, ours | {id(rest)}) if rest else {}
        except Exception:
            result.where = {}
        for oid, found in paths.items():
            if found.get("where"):
                result.where[oid] = str(found["where"])
        for target in targets:
            # held by a running frame: its local is the holder to name first
            local = frame_hint.get(id(target))
            if local is not None:
                result.where[id(target)] = local
        del targets, rest, paths
    del frame_values, kept
    result.seconds = time.perf_counter() - start
    result.request = request
    return result


def object_row(scan: HeapScan, obj: object, size: int, **extra: Any) -> dict[str, Any]:
    """A section row for a kept object: identity for diffs, type, size, summary, holder."""
    where = scan.where.get(id(obj))
    found = (scan.paths or {}).get(id(obj)) or {}
    path = found.get("path")
    tname = type_name(type(obj))
    return {
        # identity for diffs: the path from its root (stable across processes), else the
        # object itself; never the words of a hint, which change as things grow
        "key": path or f"{tname} at {id(obj):#x}",
        "id": id(obj),
        "type": tname,
        **extra,
        "size_bytes": size,
        "summary": summarize_container(obj),
        "held": held_types(obj),
        "where": where,
        "path": path,
        "owner": found.get("owner"),
    }


_INDEX = re.compile(r"\[\d+\]")


def sample_where(scan: HeapScan, tp: type) -> str | None:
    """Where the instances of ``tp`` live, from one sampled instance's holder path
    (``logger 'audit' handlers`` for a handler at ``logger 'audit' handlers[3]``)."""
    obj = (scan.samples or {}).get(tp)
    found = (scan.paths or {}).get(id(obj)) if obj is not None else None
    path = found.get("path") if found else None
    if not path:
        return None
    path = path.split(" -> ", 1)[0]  # past an unnamed hop the words say little
    if path.endswith("]") and "[" in path:
        return path[: path.rindex("[")]  # the container, not the one slot this instance is in
    return _INDEX.sub("[*]", path)  # one slot of many: any of them


def count_types(
    complete: bool = True, *, current_frames: bool = True
) -> dict[type, tuple[int, int]]:
    """Every live type -> (count, shallow size in bytes), untracked objects included.

    ``current_frames=False`` leaves out what only the calling thread's running frames hold:
    for a caller that counts again and again from the same place (a no-growth check
    between runs), those frames are suspended in their calls all along, so their locals
    cannot change and reading them (about 0.7 ms under a test runner's stack) only adds
    the same rows each time.
    """
    scan = scan_heap(
        HeapRequest(complete=complete, where=False),
        count_frozen=False,
        current_frames=current_frames,
    )
    return {tp: (row[0], row[1]) for tp, row in scan.tally.items()}
