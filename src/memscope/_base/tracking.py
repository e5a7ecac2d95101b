"""The tracking registry: named objects registered with :func:`memscope.track`.

Every snapshot's ``tracked`` section, clear_caches(), release_memory() and the guard
objects (which register themselves) all use this one registry.

Objects are held weakly, so tracking never keeps anything alive. Plain ``dict``,
``list``, ``set`` and ``tuple`` cannot be weakly referenced; for those memscope
keeps the object only as long as an *owner* lives: pass ``owner=`` (an instance or
module holding it), or let ``track()`` find it in the calling module's globals
or as an attribute of the caller's ``self``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from .validate import check_bool, check_str

__all__ = [
    "ReportsStats",
    "clear_caches",
    "default_name",
    "estimate_size",
    "stats_of",
    "track",
    "tracked_objects",
    "untrack",
]

T = TypeVar("T")

log = logging.getLogger("memscope")

MAX_ENTRIES = 10_000  # the registry itself must stay bounded
SIZE_SAMPLE = 64  # items sampled to estimate a large container's size


@runtime_checkable
class ReportsStats(Protocol):
    """An object that reports its own statistics to snapshots (the guard objects do)."""

    def memscope_stats(self) -> Mapping[str, Any]:
        """Counters and sizes: numbers, strings, bools or None; ``size_bytes`` replaces the
        estimate (with ``size_estimated``)."""
        ...


@dataclass(slots=True)
class _Entry:
    name: str
    key: int
    clear: bool
    get: Callable[[], Any]  # returns the object, or None once it is gone
    obj_id: int
    owned: tuple[int, str] | None  # (id(owner), name) for owner-held containers
    finalizer: weakref.finalize[Any, Any] | None = None
    registered: float = field(default_factory=time.time)


_lock = threading.RLock()


def _after_fork_in_child() -> None:
    # a thread of the parent may have held the lock at the fork; it does not exist here,
    # so the lock would stay held and the child's first track() would hang
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_entries: dict[int, _Entry] = {}
_by_object: dict[int, int] = {}  # id(tracked object) -> entry key, for O(1) re-tracking
_by_owner: dict[tuple[int, str], int] = {}  # (id(owner), name) -> entry key
_seq = itertools.count()
dropped_total = 0


# where an owner holds a plain container: a key of its namespace, then at most one key or
# index inside that value; searched with a bound so track() stays cheap
_Path = tuple[tuple[str, Any], ...]
_SEARCH_ITEMS = 10_000


def _namespace(owner: object) -> dict[str, Any] | None:
    try:
        ns = vars(owner)
    except TypeError:
        return None
    return ns if isinstance(ns, dict) else None


def _path_to(owner: object, obj: object) -> _Path | None:
    """How ``owner`` holds ``obj``: ``(("key", "items"),)`` for ``owner.items``,
    ``(("key", "caches"), ("key", "users"))`` for ``owner.caches["users"]``; None if not."""
    ns = _namespace(owner)
    if ns is None:
        return None
    values = list(ns.items())
    for name, value in values:
        if value is obj:
            return (("key", name),)
    for name, value in values:
        if type(value) is dict:
            for key, item in itertools.islice(dict.items(value), _SEARCH_ITEMS):
                if item is obj and type(key) in (str, int):
                    return (("key", name), ("key", key))
        elif type(value) is list:
            for index, item in enumerate(itertools.islice(value, _SEARCH_ITEMS)):
                if item is obj:
                    return (("key", name), ("index", index))
    return None


def _find_owner(obj: object, depth: int) -> object | None:
    """The caller's ``self`` or module when it holds ``obj``; cheap: one frame, no heap scan."""
    try:
        frame = sys._getframe(depth)
    except ValueError:  # pragma: no cover - there is always a caller
        return None
    try:
        this: object = frame.f_locals.get("self")
        if this is not None and _path_to(this, obj) is not None:
            return this
        module = sys.modules.get(frame.f_globals.get("__name__", ""))
        if module is not None and _path_to(module, obj) is not None:
            return module
        return None
    finally:
        del frame


def track(
    obj: T,
    name: str | None = None,
    *,
    clear: bool = False,
    owner: object | None = None,
) -> T:
    """Register ``obj`` (anything sized) so every snapshot shows its name, len and size.

    ``clear=True`` lets :func:`clear_caches` empty it. Returns ``obj``.
    """
    global dropped_total
    if name is None:
        name = type(obj).__qualname__
    check_str("name", name)
    check_bool("clear", clear)
    if clear and not callable(getattr(obj, "clear", None)):
        raise TypeError(
            f"clear=True needs an object with a clear() method; {type(obj).__name__} has none"
        )
    getter: Callable[[], Any]
    owned: tuple[int, str] | None = None
    try:
        getter = weakref.ref(obj)
    except TypeError:
        holder = owner if owner is not None else _find_owner(obj, 2)
        if holder is None:
            raise TypeError(
                f"{type(obj).__name__} objects cannot be weakly referenced, so memscope needs "
                "to know what owns this one: pass owner=<the instance or module that holds it> "
                "(it is then tracked as long as the owner holds it), or track a subclass "
                f"(class Tracked{type(obj).__name__.title()}({type(obj).__name__}): pass)"
            ) from None
        path = _path_to(holder, obj)
        if path is None:
            # holding it ourselves would keep it alive after the owner lets go of it
            raise TypeError(
                f"owner does not hold this {type(obj).__name__} as an attribute or as an item "
                "of one (owner.items, owner.caches['users']); pass the owner that holds it, "
                "or track a weakly referenceable subclass"
            ) from None
        try:
            owner_ref = weakref.ref(holder)
        except TypeError:
            raise TypeError(
                f"owner must be weakly referenceable (an instance or a module), "
                f"got {type(holder).__name__}"
            ) from None
        getter = _OwnedGetter(owner_ref, path, id(obj))
        owned = (id(holder), name)
    key = next(_seq)
    entry = _Entry(name, key, clear, getter, id(obj), owned)
    with _lock:
        # re-tracking the same object, or tracking a replacement under the same owner and
        # name (self.items = {}; track(self.items, ...)), replaces the entry: never two
        old = _entries.get(_by_object.get(id(obj), -1))
        if old is not None and old.get() is obj:
            _forget(old.key)
        if owned is not None and owned in _by_owner:
            _forget(_by_owner[owned])
        while len(_entries) >= MAX_ENTRIES:
            _forget(next(iter(_entries)))
            dropped_total += 1
        _entries[key] = entry
        _by_object[id(obj)] = key
        if owned is not None:
            _by_owner[owned] = key
        # drop the entry as soon as the object (or its owner) dies, so the registry does
        # not grow; the finalizer goes with the entry, so re-tracking adds none
        target = obj if isinstance(getter, weakref.ref) else getter.owner_ref()
        entry.finalizer = weakref.finalize(target, _forget, key)
        entry.finalizer.atexit = False
    return obj


class _OwnedGetter:
    """Finds an unweakrefable container where its owner holds it; never holds it itself.

    It holds the owner weakly and the path to the container (``owner.items``,
    ``owner.caches["users"]``); when the owner has let go of it, or holds another object
    there, the container is gone for memscope too, so tracking never extends its life.
    """

    __slots__ = ("obj_id", "owner_ref", "path")

    def __init__(self, owner_ref: weakref.ref[Any], path: _Path, obj_id: int) -> None:
        self.owner_ref = owner_ref
        self.path = path
        self.obj_id = obj_id

    def __call__(self) -> object | None:
        owner = self.owner_ref()
        if owner is None:
            return None
        found: Any = _namespace(owner)
        for kind, key in self.path:
            if kind == "key" and type(found) is dict:
                found = dict.get(found, key)
            elif kind == "index" and type(found) is list and key < len(found):
                found = found[key]
            else:
                return None
        return found if id(found) == self.obj_id else None


def _forget(key: int) -> None:
    with _lock:
        entry = _entries.pop(key, None)
        if entry is None:
            return
        if _by_object.get(entry.obj_id) == key:
            del _by_object[entry.obj_id]
        if entry.owned is not None and _by_owner.get(entry.owned) == key:
            del _by_owner[entry.owned]
    if entry.finalizer is not None:
        entry.finalizer.detach()  # a no-op when the finalizer is what called us


def untrack(obj: object) -> bool:
    """Stop tracking ``obj``; returns whether it was tracked."""
    with _lock:
        entry = _entries.get(_by_object.get(id(obj), -1))
        if entry is not None and entry.get() is obj:
            _forget(entry.key)
            return True
    return False


def tracked_objects() -> list[tuple[str, object, bool]]:
    """(name, object, clearable) for every live tracked object."""
    out = []
    with _lock:
        entries = list(_entries.values())
    for entry in entries:
        obj = entry.get()
        if obj is not None:
            out.append((entry.name, obj, entry.clear))
        elif isinstance(entry.get, _OwnedGetter):
            _forget(entry.key)  # its owner let go of it
    return out


def clear_caches() -> dict[str, int]:
    """Clear every tracked object registered with ``clear=True``; name -> items cleared."""
    cleared: dict[str, int] = {}
    for name, obj, clearable in tracked_objects():
        if not clearable:
            continue
        try:
            before = len(obj)  # type: ignore[arg-type]
        except Exception:  # a __len__ that raises (OverflowError, ...) costs only the count
            before = 0
        try:
            obj.clear()  # type: ignore[attr-defined]
        except Exception:  # one broken cache must not stop the others
            log.exception("memscope: clearing tracked object %r failed", name)
            continue
        cleared[name] = cleared.get(name, 0) + before
    return cleared


def estimate_size(obj: object, sample: int = SIZE_SAMPLE) -> tuple[int, bool]:
    """(bytes, estimated): the container plus its items, sampled past ``sample`` items."""
    getsizeof = sys.getsizeof
    try:
        total = getsizeof(obj)
    except Exception:  # a __sizeof__ that raises (anything) costs only this estimate
        return 0, True
    items: Any
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple, set, frozenset)) or hasattr(obj, "__iter__"):
        items = obj
    else:
        return total, False
    if isinstance(obj, (str, bytes, bytearray, memoryview)):
        return total, False
    try:
        n = len(obj)  # type: ignore[arg-type]
        seen = 0
        part = 0
        for item in itertools.islice(iter(items), sample):
            if isinstance(item, tuple) and isinstance(obj, Mapping):
                part += getsizeof(item[0]) + getsizeof(item[1])
            else:
                part += getsizeof(item)
            seen += 1
    except Exception:  # changed during iteration, or a lazy container that raises
        return total, True
    if seen == 0:
        return total, False
    if seen >= n:
        return total + part, False
    return total + part * n // seen, True


def stats_of(obj: object) -> dict[str, Any]:
    """``obj.memscope_stats()`` as JSON-safe scalars ({} without one; a failure is an entry)."""
    try:
        stats_fn = getattr(obj, "memscope_stats", None)
        if not callable(stats_fn):
            return {}
        # JSON-safe scalars only: NaN or infinity would make the snapshot unsaveable
        return {
            str(k): v
            for k, v in dict(stats_fn()).items()
            if type(v) in (int, str, bool) or v is None or (type(v) is float and math.isfinite(v))
        }
    except Exception as exc:  # contained: one broken reporter costs its own row only
        return {"error": f"{type(exc).__name__}: {exc}"}


_ASSIGN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?::[^=]*)?=[^=]")


def default_name(kind: str, depth: int = 1) -> str:
    """A name a user recognises for an object made without one: where it was created.

    ``app.models._cache`` for ``_cache = BoundedCache(...)`` at module level,
    ``app.models.Service.cache`` for ``self.cache = ...`` in a method, else
    ``BoundedCache@app.models:42``. ``depth`` counts frames above the caller.
    """
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:
        return kind
    try:
        module = frame.f_globals.get("__name__")
        module = module if isinstance(module, str) else "?"
        lineno = frame.f_lineno
        import linecache

        line = linecache.getline(frame.f_code.co_filename, lineno)
        match = _ASSIGN.match(line)
        if match is not None:
            target = match.group(1)
            if target.startswith("self."):
                owner = frame.f_locals.get("self")
                cls = type(owner).__qualname__ if owner is not None else "?"
                return f"{module}.{cls}.{target[5:]}"
            if frame.f_code.co_name == "<module>":
                return f"{module}.{target}"
            return f"{module}.{frame.f_code.co_name}.{target}"
        return f"{kind}@{module}:{lineno}"
    finally:
        del frame
