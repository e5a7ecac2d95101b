"""Reading objects during a scan without running their code.

A heap walk meets every object, some of them with Python-level ``__class__``,
``__len__``, ``__iter__``, ``__getattribute__`` or ``__eq__`` (Django's lazy settings,
SimpleLazyObject, proxies). ``isinstance(o, T)`` reads ``o.__class__`` when the type test
fails, and ``len(o)`` on a dict subclass calls its ``__len__``: either can run user code,
raise, or change the heap being counted. Everything here looks at ``type(o)`` and calls
the built-in base type's own C methods instead.
"""

from __future__ import annotations

import gc
from collections import deque
from typing import Any

# built-in types whose C-level length and iteration a scan may use on their subclasses
_BASES: tuple[type, ...] = (dict, list, tuple, set, frozenset, deque, str, bytes, bytearray)
_GETSET = type(type.__dict__["__dict__"])  # a C attribute descriptor: reading it runs no user code
_MEMBER = type(type.__dict__["__weakrefoffset__"])
# up to this many items, a tuple or list is read through gc.get_referents (NULL-safe);
# a longer one through its C iterator, so a scan never copies a huge sequence
NULL_SAFE_MAX_ITEMS = 100_000


def is_a(obj: object, types: type | tuple[type, ...]) -> bool:
    """``isinstance`` by the real type: never reads ``obj.__class__``."""
    return issubclass(type(obj), types)


def base_of(obj: object) -> type | None:
    """The built-in container or string type ``obj``'s type derives from, if any."""
    tp = type(obj)
    for base in _BASES:
        if issubclass(tp, base):
            return base
    return None


def base_len(obj: object) -> int | None:
    """``len(obj)`` by its built-in base's C method (a subclass's ``__len__`` is not called)."""
    base = base_of(obj)
    if base is None:
        return None
    try:
        return int(base.__len__(obj))  # type: ignore[attr-defined]
    except Exception:
        return None


def base_iter(obj: object) -> Any:
    """``iter(obj)`` by its built-in base's C method (for dicts: the keys)."""
    base = base_of(obj)
    if base is None:
        raise TypeError(f"{type(obj).__name__} is not a built-in container")
    if base is tuple or base is list:
        return iter(sequence_items(obj, base))
    return base.__iter__(obj)  # type: ignore[attr-defined]


def sequence_items(obj: Any, base: type) -> Any:
    """The items of a tuple or list in order, skipping NULL slots (an iterable of them).

    ``tuple(generator)`` in another thread makes a tuple the gc already shows and fills
    it as the generator yields, so a heap walk can meet it with NULL slots at the end;
    its own iterator hands such a slot out and the interpreter crashes (a segfault).
    ``gc.get_referents`` visits the same slots, last first, and skips NULL ones; for a
    subclass it visits slot values, the ``__dict__`` and the type before them, so the
    items are the last ``len`` of them, reversed. Past NULL_SAFE_MAX_ITEMS the C
    iterator is used.
    """
    n = int(base.__len__(obj))  # type: ignore[attr-defined]
    if n > NULL_SAFE_MAX_ITEMS:
        return base.__iter__(obj)  # type: ignore[attr-defined]
    if n == 0:
        return []
    refs = gc.get_referents(obj)
    if type(obj) is not base:
        refs = refs[-n:]
    refs.reverse()
    return refs


def _type_attr(tp: type, name: str) -> object:
    """``name`` from the first class of ``tp``'s MRO that defines it (no lookup hooks)."""
    for klass in type.__dict__["__mro__"].__get__(tp):
        namespace = type.__dict__["__dict__"].__get__(klass)
        if name in namespace:
            return namespace[name]
    return None


def instance_dict(obj: object) -> dict[str, Any] | None:
    """``obj.__dict__`` when it is the ordinary C slot (a property or __getattr__ is not run)."""
    descriptor = _type_attr(type(obj), "__dict__")
    if type(descriptor) is not _GETSET:
        return None
    try:
        found = descriptor.__get__(obj, type(obj))  # type: ignore[attr-defined]
    except Exception:
        return None
    return found if type(found) is dict else None


def slot_value(obj: object, slot: str) -> tuple[bool, object]:
    """(True, value) of a ``__slots__`` member read by its C descriptor, else (False, None)."""
    descriptor = _type_attr(type(obj), slot)
    if type(descriptor) is not _MEMBER:
        return False, None
    try:
        return True, descriptor.__get__(obj, type(obj))  # type: ignore[attr-defined]
    except Exception:  # an empty slot raises AttributeError
        return False, None
