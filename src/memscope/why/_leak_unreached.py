"""Objects alive that no root reaches: held by a reference no Python object owns.

After a full collection every object alive is reachable from something. The roots
Python code can see are the module namespaces (and ``sys.modules``), every class, the
frames of every thread (their locals read as ``f_locals`` snapshots), pending asyncio
tasks and the callbacks C keeps (signal handlers, trace hooks). An object no chain from
those reaches is held from C: by the interpreter's own state (a subclass table, the
copies of built-in modules' namespaces, the codec registry), or by a C extension that
took a reference and never gave it back (``Py_INCREF`` without its ``Py_DECREF``).

One pass (:func:`unreached_pass`):
1. ``gc.get_objects()``, then a forward walk from the roots, level by level in C
   (``gc.get_referents`` of a whole level at once); code objects are not tracked by the
   gc, so the constants of every function's, frame's and generator's code are followed
   by hand, and so are the namespaces of the built-in (static) types;
2. what the walk did not reach is the unreached set ``U``; the references to a member of
   ``U`` that no tracked object accounts for (``sys.getrefcount`` less the references
   from ``U`` itself and the pass's own, measured on a sentinel held the same way) are
   references from C. A member of ``U`` with such references is an entry point (one no
   other unreached object refers to, when there is one; any for a cycle);
3. each entry point's group (by type) takes what it holds that nothing reached holds.
   An unreached object no entry point holds was freed meanwhile (the pass held it): it
   is left out.
The pass returns counts and words only (:class:`PassResult`) and keeps nothing.
:func:`judge` compares two passes: a type is flagged when its count of entry points
grew between them (by more than one a thread running Python code, counting only the new
ones still there at a third pass when there is one: temporaries on a thread's value
stack are held from C too while they live), or when it is the program's own (not
builtins, not the standard library, not an installed package's: their C code keeps some
of their objects on purpose) and unreached in both; everything else is the
interpreter's steady state.
"""

from __future__ import annotations

import builtins
import gc
import itertools
import operator
import pathlib
import sys
import threading
import time
import types
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .._base.aio import live_tasks
from .._base.units import type_name
from ._forward import all_classes
from ._leak_cycles import size_of

__all__ = ["PassResult", "TypeUnreached", "Verdict", "is_program_type", "judge", "unreached_pass"]

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement (or type())
_CODE_OF: dict[type, Callable[[object], object]] = {
    types.FunctionType: operator.attrgetter("__code__"),
    types.FrameType: operator.attrgetter("f_code"),
    types.GeneratorType: operator.attrgetter("gi_code"),
    types.CoroutineType: operator.attrgetter("cr_code"),
    types.AsyncGeneratorType: operator.attrgetter("ag_code"),
}
_HOLDS_CODE = frozenset(_CODE_OF)
_MODULE = type.__dict__["__module__"]
_SAMPLE_TYPES = 3  # types named in a group's sample
_ID_LIMIT = 100_000  # entry points of one type whose ids a pass keeps


@dataclass(frozen=True)
class TypeUnreached:
    """Entry points of one type that no root reaches, with what only they hold."""

    type: str
    entries: int  # unreached objects held from C
    objects: int  # the entries and the tracked objects only they hold
    size_bytes: int  # sys.getsizeof of those objects
    program: bool  # the type is the program's own (not Python's, not an installed package's)
    sample: str = ""  # what only they hold, by type: "they hold 500 dict, 500 list"
    # the entry points' ids (numbers: nothing held), to tell the same ones at a later pass
    # from new ones; None past _ID_LIMIT of them
    entry_ids: frozenset[int] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PassResult:
    """One unreached pass: groups by entry type (largest first), or why there are none."""

    groups: list[TypeUnreached] = field(default_factory=list)
    objects: int = 0  # tracked objects alive when the pass began
    reached: int = 0  # of those, how many a root reaches
    seconds: float = 0.0
    complete: bool = True  # False: the deadline stopped the walk (no groups then)
    # other threads running Python code: each may hold temporaries on its value stack
    threads: int = 0


@dataclass(frozen=True)
class Verdict:
    """The groups flagged as leaks and the steady rest, from two passes."""

    flagged: list[tuple[TypeUnreached, str, int]]  # (last pass's group, why, first entries)
    steady_objects: int
    steady_types: int


_INSTALLED = frozenset({"site-packages", "dist-packages"})


def is_program_type(module: str, modules: Mapping[str, object] | None = None) -> bool:
    """Whether a type of ``module`` is the program's own: not Python's, not an installed package's.

    Installed packages' C code keeps objects of their own types on purpose (a Cython
    module's state, numpy's singletons): those are flagged only when they grow. A module
    that is not in ``modules`` (``sys.modules`` by default) is not the program's either.
    """
    top = module.split(".", 1)[0]
    if top == "__main__":
        return True
    if top == "builtins" or top in sys.stdlib_module_names:
        return False
    found = (sys.modules if modules is None else modules).get(top)
    if found is None:
        return False
    try:
        path = found.__dict__.get("__file__")  # a module's namespace: no __getattr__ runs
    except Exception:
        return False
    if type(path) is not str:
        return True  # a namespace package or a module made at run time: the program's
    return _INSTALLED.isdisjoint(pathlib.PurePath(path).parts)


def _module_of(tp: type) -> str:
    try:
        mod = _MODULE.__get__(tp)
    except Exception:
        return "?"
    return mod if type(mod) is str else "?"


class _Consts:
    """The tracked ``co_consts`` tuples of the code objects met (the gc never sees them)."""

    def __init__(self) -> None:
        self.codes: dict[int, object] = {}  # held while the pass runs, so ids stay unique

    def of(self, objs: Iterable[object]) -> list[object]:
        """Tuples of constants of the code of ``objs`` (functions, frames, generators)."""
        stack: list[object] = []
        for holder in objs:
            get = _CODE_OF.get(type(holder))
            if get is not None:
                try:
                    stack.append(get(holder))
                except Exception:
                    continue
        found: list[object] = []
        codes = self.codes
        while stack:
            code = stack.pop()
            if type(code) is not types.CodeType or id(code) in codes:
                continue
            codes[id(code)] = code
            consts = code.co_consts
            if gc.is_tracked(consts):
                found.append(consts)
            stack.extend(c for c in consts if type(c) is types.CodeType)
        code = None
        return found

    def release(self) -> None:
        """Drop the code objects held."""
        self.codes.clear()


def _holders(objs: list[object]) -> list[object]:
    """The functions, frames and generators of ``objs`` (found in C)."""
    return list(itertools.compress(objs, map(_HOLDS_CODE.__contains__, map(type, objs))))


def _frames_from(frame: types.FrameType | None, out: list[object]) -> None:
    """A frame and those below it, with their namespaces and locals (a snapshot each)."""
    while frame is not None:
        out.append(frame)
        out.append(frame.f_globals)
        out.append(frame.f_builtins)
        # (3.11) the gc does not follow a running frame's locals: f_locals makes a dict
        # of them, kept on the frame (locals() gives the same one) and refreshed each time
        try:
            snapshot = frame.f_locals
        except Exception:
            snapshot = None
        if snapshot is not None:
            out.append(snapshot)
        snapshot = None
        frame = frame.f_back


def default_sources(caller: types.FrameType | None) -> list[object]:
    """The roots: namespaces, classes, threads' frames (from ``caller`` in this one), tasks."""
    # sys.modules reaches every module and its namespace; the rest is held by C
    sources: list[object] = [sys.modules, sys.__dict__, builtins.__dict__]
    sources.extend(t for t in live_tasks() if getattr(t, "_state", "PENDING") == "PENDING")
    sources.extend(_callbacks())
    classes = all_classes()
    sources.extend(classes)
    for cls in classes:
        # a built-in (static) type is not tracked: its namespace is reached through it
        if not type.__dict__["__flags__"].__get__(cls) & _HEAPTYPE:
            sources.extend(gc.get_referents(type.__dict__["__dict__"].__get__(cls, type)))
        # its entry in each base's table of subclasses (a weak reference the gc never sees)
        sources.extend(weakref.getweakrefs(cls))
    classes = []
    frames = sys._current_frames()
    # this thread's frames start at the caller's: the pass's own hold only its work
    frames.pop(threading.get_ident(), None)
    for top in frames.values():
        _frames_from(top, sources)
    frames.clear()
    _frames_from(caller, sources)
    return sources


def _callbacks() -> list[object]:
    """Signal handlers and this thread's trace and profile hooks (C keeps them)."""
    found: list[object] = [sys.gettrace(), sys.getprofile()]
    signal = sys.modules.get("signal")
    if signal is not None:
        for num in signal.valid_signals():
            try:
                found.append(signal.getsignal(num))
            except (ValueError, OSError):
                continue
    return [f for f in found if f is not None and type(f) is not int]


def _reach(
    sources: list[object],
    seen: dict[int, object],
    consts: _Consts,
    deadline: float,
    clock: Callable[[], float],
) -> bool:
    """Add to ``seen`` (id -> object) everything tracked ``sources`` reach; False past ``deadline``.

    One dict does the whole bookkeeping in C: updating it with a level's referents keeps
    the keys it had where they were and appends the new ones, so the next level is what
    lies past its old length (about half the time of a set of ids and a set difference).
    """
    start = len(seen)
    seen.update(zip(map(id, sources), sources))
    while start < len(seen):
        if clock() > deadline:
            return False
        level = list(itertools.islice(seen.values(), start, None))
        start = len(seen)
        found = list(filter(gc.is_tracked, gc.get_referents(*level)))
        found += consts.of(_holders(level))
        level = []
        seen.update(zip(map(id, found), found))
        found = []
    return True


def unreached_pass(
    *,
    deadline: float,
    caller: types.FrameType | None = None,
    sources: Callable[[types.FrameType | None], list[object]] = default_sources,
    clock: Callable[[], float] = time.monotonic,
) -> PassResult:
    """Count, by type, what is alive but reached from no root (see the module docstring).

    ``caller``: the frame this thread's roots begin at (the pass's own frames are left
    out: what they hold is the pass's work; None: none of this thread's frames is a
    root). ``sources`` gives the roots, injectable.
    """
    started = clock()
    everything = gc.get_objects()
    total = len(everything)
    seen: dict[int, object] = {}
    consts = _Consts()
    roots: list[object] = []
    try:
        roots = sources(caller)
        # the pass's own containers made so far are never walked into, never counted
        seen.update(dict.fromkeys((id(roots), id(seen), id(consts), id(consts.codes))))
        done = _reach(roots, seen, consts, deadline, clock)
        roots = []
        if not done:
            return PassResult(objects=total, seconds=clock() - started, complete=False)
        unreached = _not_in(everything, seen)
        reached = total - len(unreached)
        # every reference the pass holds must be one the sentinel of _groups is held by
        everything.clear()
        seen.clear()
        groups = _groups(unreached, consts)
        unreached = []
    finally:
        everything = roots = []
        seen.clear()
        consts.release()
    threads = max(len(sys._current_frames()) - 1, 0)
    return PassResult(groups, total, reached, clock() - started, threads=threads)


def _not_in(objs: list[object], seen: dict[int, object]) -> list[object]:
    """The objects of ``objs`` whose id is not in ``seen`` (found in C)."""
    keep = map(operator.not_, map(seen.__contains__, map(id, objs)))
    return list(itertools.compress(objs, keep))


def _groups(unreached: list[object], consts: _Consts) -> list[TypeUnreached]:
    """Entry points of ``unreached`` by type, each with what only its group holds."""
    if not unreached:
        return []
    inside = {id(o): o for o in unreached}
    # references from the unreached themselves (their constants' tuples included)
    refs = gc.get_referents(*unreached)
    refs += consts.of(_holders(unreached))
    internal = Counter(filter(inside.__contains__, map(id, refs)))
    refs = []
    # the pass's own references to each, measured on a sentinel held the same ways
    inside[0] = object()
    unreached.append(inside[0])
    counts = list(map(sys.getrefcount, unreached))
    ours = counts.pop()
    unreached.pop()
    del inside[0]
    held_from_c = [o for o, n in zip(unreached, counts) if n - ours - internal.get(id(o), 0) > 0]
    counts = []
    # entry points first: held from C and by no other unreached object
    primary = [o for o in held_from_c if not internal.get(id(o), 0)]
    secondary = [o for o in held_from_c if internal.get(id(o), 0)]
    held_from_c = []
    claimed: set[int] = set()
    tallies: dict[int, _Tally] = {}
    for batch in (primary, secondary):
        by_type: dict[int, list[object]] = {}
        for o in batch:
            if id(o) not in claimed:
                by_type.setdefault(id(type(o)), []).append(o)
        o = None
        for tid in sorted(by_type, key=lambda t: len(by_type[t]), reverse=True):
            entries = [o for o in by_type[tid] if id(o) not in claimed]
            if entries:
                tally = tallies.get(tid)
                if tally is None:
                    tally = tallies[tid] = _Tally(type(entries[0]))
                tally.claim(entries, inside, claimed)
            entries = []
        by_type.clear()
    primary = secondary = []
    inside.clear()
    rows = [t.row() for t in tallies.values()]
    tallies.clear()
    rows.sort(key=lambda r: (r.size_bytes, r.objects), reverse=True)
    return rows


class _Tally:
    """The entry points of one type and what only they hold, as numbers and names."""

    def __init__(self, tp: type) -> None:
        self.name = type_name(tp)
        self.program = is_program_type(_module_of(tp))
        self.count = 0
        self.objects = 0
        self.size = 0
        self.below: Counter[str] = Counter()
        self.ids: list[int] = []

    def claim(self, entries: list[object], inside: dict[int, object], claimed: set[int]) -> None:
        """Count ``entries`` and the unreached below them that no group claimed yet."""
        self.count += len(entries)
        if len(self.ids) < _ID_LIMIT:
            self.ids.extend(map(id, entries[: _ID_LIMIT - len(self.ids)]))
        claimed.update(map(id, entries))
        self.objects += len(entries)
        self.size += sum(map(size_of, entries))
        level = entries
        while level:
            found = gc.get_referents(*level)
            fresh = {id(o): o for o in found if id(o) in inside and id(o) not in claimed}
            found = []
            claimed.update(fresh)
            level = list(fresh.values())
            fresh.clear()
            self.objects += len(level)
            self.size += sum(map(size_of, level))
            self.below.update(type_name(type(o)) for o in level)
        level = entries = []

    def row(self) -> TypeUnreached:
        """The group as a row of words and numbers."""
        sample = ""
        if self.below:
            top = self.below.most_common(_SAMPLE_TYPES)
            words = ", ".join(f"{n:,} {t}" for t, n in top)
            extra = len(self.below) - len(top)
            more = f" and {extra} more types" if extra else ""
            sample = f"{'they hold' if self.count > 1 else 'holds'} {words}{more}"
        ids = frozenset(self.ids) if self.count <= _ID_LIMIT else None
        return TypeUnreached(
            self.name, self.count, self.objects, self.size, self.program, sample, entry_ids=ids
        )


def judge(first: PassResult, last: PassResult, again: PassResult | None = None) -> Verdict:
    """Flag what grew between two passes, and program types unreached in both.

    A temporary on another thread's value stack (a for loop's generator, the list a
    comprehension is building, a call's bound method) is held from C in the same sense
    while it lives, and Python cannot see value stacks. So a type grew only if it has
    more entry points than at ``first`` by more than the number of other threads running
    Python code; and, given ``again`` (a pass made a moment after ``last``), only the
    entry points new at ``last`` that are still there at ``again`` count (by id, where
    the passes kept them; else by count).
    """
    before = {g.type: g for g in first.groups}
    after = {} if again is None else {g.type: g for g in again.groups}
    noise = max(last.threads, 0 if again is None else again.threads)
    flagged: list[tuple[TypeUnreached, str, int]] = []
    steady_objects = steady_types = 0
    for group in last.groups:
        old = before.get(group.type)
        was = old.entries if old is not None else 0
        grown = group.entries - was
        if again is not None:
            grown = min(grown, _still_new(old, group, after.get(group.type)))
        if grown > noise:
            flagged.append((group, "grew", was))
        elif group.program and was:
            flagged.append((group, "program type", was))
        else:
            steady_objects += group.objects
            steady_types += 1
    return Verdict(flagged, steady_objects, steady_types)


def _still_new(old: TypeUnreached | None, now: TypeUnreached, later: TypeUnreached | None) -> int:
    """How many entry points new at ``now`` (not at ``old``) are still there ``later``."""
    if later is None:
        return 0
    before = frozenset() if old is None else old.entry_ids
    if before is None or now.entry_ids is None or later.entry_ids is None:
        return later.entries - (0 if old is None else old.entries)  # too many to keep ids
    return len((now.entry_ids - before) & later.entry_ids)
