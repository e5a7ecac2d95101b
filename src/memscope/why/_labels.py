"""Words for objects and for the references between them, without running user code.

Everything here looks at an object through its exact type (``type(o)``, never
``isinstance``, which reads ``__class__`` and so may run a property) and reads
attributes through the C descriptors of the type, never through ``getattr`` on the
instance. A key is shown by ``repr`` only when its type is exactly a builtin scalar.
"""

from __future__ import annotations

import gc
import itertools
import types
from collections import deque
from typing import Any

from .._base.units import type_name
from ..collectors._safe import base_iter

# far more than any key/index a chain needs: a hop into a giant container is still named
_SCAN_LIMIT = 5_000_000

_SCALARS = (str, bytes, int, float, bool, complex, type(None))
_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType
_GENERATORS = {
    types.GeneratorType: ("generator", "gi_frame"),
    types.CoroutineType: ("coroutine", "cr_frame"),
    types.AsyncGeneratorType: ("async generator", "ag_frame"),
}


def mro(tp: type) -> tuple[type, ...]:
    """The MRO of ``tp`` read from the type itself (a metaclass cannot intercept it)."""
    found: Any = type.__dict__["__mro__"].__get__(tp, type)
    return found if type(found) is tuple else (tp, object)


def is_a(obj: object, base: type) -> bool:
    """``isinstance`` by the exact type's MRO: ``__class__`` is never read."""
    tp = type(obj)
    return tp is base or base in mro(tp)


def short_type(obj: object) -> str:
    """``Registry`` for an instance, ``dict`` for a dict: the name of the exact type."""
    tp = type(obj)
    qual = type.__dict__["__name__"].__get__(tp, type)
    return qual if type(qual) is str else "?"


def long_type(obj: object) -> str:
    """``app.models.Model``: module and qualname of the exact type."""
    return type_name(type(obj))


def key_text(key: object, limit: int = 40) -> str:
    """``repr`` of a plain scalar key (clipped), else ``<TypeName>``."""
    tp = type(key)
    k: Any = key
    if tp in (str, bytes):
        text = repr(k[:limit])
        return text + "..." if len(k) > limit else text
    if tp is int and k.bit_length() > 128:
        return f"<int of {k.bit_length()} bits>"
    if tp in _SCALARS:
        return repr(k)
    if tp is tuple and len(k) <= 4 and all(type(x) in _SCALARS for x in k):
        inner = ", ".join(key_text(x, 16) for x in k)
        return f"({inner},)" if len(k) == 1 else f"({inner})"
    return f"<{short_type(key)}>"


def instance_dict(obj: object) -> dict[str, Any] | None:
    """The instance ``__dict__`` through the type's C descriptor (no ``__getattr__`` runs)."""
    for klass in mro(type(obj)):
        desc = type.__dict__["__dict__"].__get__(klass, type).get("__dict__")
        if desc is None:
            continue
        if type(desc) is not _GETSET and type(desc) is not _MEMBER:
            return None  # a Python-level __dict__ property: user code, leave it alone
        try:
            found = desc.__get__(obj, type(obj))
        except Exception:
            return None
        return found if type(found) is dict else None
    return None


def slot_values(obj: object) -> list[tuple[str, object]]:
    """``(name, value)`` for every filled ``__slots__`` member, through member descriptors."""
    out: list[tuple[str, object]] = []
    for klass in mro(type(obj)):
        for name, desc in type.__dict__["__dict__"].__get__(klass, type).items():
            if type(desc) is _MEMBER and type(name) is str:
                try:
                    out.append((name, desc.__get__(obj, type(obj))))
                except Exception:  # an unset slot
                    continue
    return out


def frame_locals(frame: types.FrameType) -> dict[str, Any]:
    """A frame's locals (for a running frame, a fresh snapshot dict)."""
    try:
        found = frame.f_locals
    except Exception:
        return {}
    return found if type(found) is dict else {}


def frame_text(frame: types.FrameType) -> str:
    """``worker() at app/jobs.py:42``."""
    code = frame.f_code
    return f"{code.co_name}() at {code.co_filename}:{frame.f_lineno}"


def function_name(fn: types.FunctionType) -> str:
    """``module.qualname`` of a plain function."""
    mod = fn.__module__
    return f"{mod}.{fn.__qualname__}" if type(mod) is str else fn.__qualname__


def _find_in_dict(mapping: dict[Any, Any], child: object) -> str | None:
    for k, v in itertools.islice(dict.items(mapping), _SCAN_LIMIT):
        if v is child:
            return f"[{key_text(k)}]"
    for k in itertools.islice(dict.keys(mapping), _SCAN_LIMIT):
        if k is child:
            return f" key {key_text(k)}"
    return None


def _find_in_sequence(seq: Any, child: object) -> str | None:
    for i, v in enumerate(itertools.islice(base_iter(seq), _SCAN_LIMIT)):
        if v is child:
            return f"[{i}]"
    return None


def _local_name(frame: types.FrameType | None, child: object) -> str | None:
    if frame is None:
        return None
    for name, value in frame_locals(frame).items():
        if value is child:
            return f" local {name}"
    return None


def edge_label(holder: object, child: object, *, attributes: bool = True) -> str:
    """How ``holder`` refers to ``child``: ``['key']``, ``[3]``, ``.attr``, `` local x``.

    An empty string when the reference is not one Python code can name (a C field).
    ``attributes=False`` leaves instances unnamed: on 3.11+ reading an instance's
    ``__dict__`` makes one (a few hundred bytes) where the values were stored inline.
    """
    if not attributes and not _container_like(holder):
        return ""
    try:
        return _edge_label(holder, child) or ""
    except Exception:  # a half-built or exotic object: the hop is still shown, unnamed
        return ""


def _container_like(obj: object) -> bool:
    tp = type(obj)
    return (
        tp in _GENERATORS
        or tp in (types.FrameType, types.FunctionType, types.CellType)
        or any(base in mro(tp) for base in (dict, list, tuple, set, frozenset, deque, type))
    )


def _edge_label(holder: object, child: object) -> str | None:
    tp = type(holder)
    if tp is types.ModuleType or is_a(holder, types.ModuleType):
        found = instance_dict(holder)
        if found is child:
            return ".__dict__"
        return _find_in_dict(found, child) if found is not None else None
    if is_a(holder, dict):
        return _find_in_dict(holder, child)  # type: ignore[arg-type]
    if is_a(holder, list) or is_a(holder, tuple) or is_a(holder, deque):
        return _find_in_sequence(holder, child)
    if is_a(holder, set) or is_a(holder, frozenset):
        return " member"
    if tp is types.CellType:
        return ".cell_contents"
    if tp is types.FrameType:
        return _local_name(holder, child)  # type: ignore[arg-type]
    if tp in _GENERATORS:
        attr = _GENERATORS[tp][1]
        return _local_name(getattr(holder, attr), child)
    if tp is types.FunctionType:
        return _function_label(holder, child)  # type: ignore[arg-type]
    if tp is types.MethodType:
        if holder.__self__ is child:  # type: ignore[attr-defined]
            return ".__self__"
        return ".__func__" if holder.__func__ is child else None  # type: ignore[attr-defined]
    if is_a(holder, type):
        proxy = type.__dict__["__dict__"].__get__(holder, type)
        if any(m is child for m in gc.get_referents(proxy)):
            return ".__dict__"
        for name in ("__mro__", "__bases__", "__base__"):
            if type.__dict__[name].__get__(holder, type) is child:
                return f".{name}"
        return None
    attrs = instance_dict(holder)
    if attrs is child:
        return ".__dict__"
    if attrs is not None:
        for k, v in itertools.islice(dict.items(attrs), _SCAN_LIMIT):
            if v is child:
                return f".{k}" if type(k) is str else f"[{key_text(k)}]"
    for name, value in slot_values(holder):
        if value is child:
            return f".{name}"
    return None


def _function_label(fn: types.FunctionType, child: object) -> str | None:
    if fn.__closure__ is child:
        return ".__closure__"
    if fn.__defaults__ is child:
        return ".__defaults__"
    if fn.__kwdefaults__ is child:
        return ".__kwdefaults__"
    if fn.__globals__ is child:
        return ".__globals__"
    if fn.__code__ is child:
        return ".__code__"
    attrs = instance_dict(fn)
    if attrs is child:
        return ".__dict__"
    return None


def summary(obj: object) -> str:
    """A short, user-code-free description for a graph node: ``dict of 5,000``."""
    tp = type(obj)
    if tp in _SCALARS:
        return key_text(obj, 24)
    name = short_type(obj)
    for base in (dict, list, tuple, set, frozenset, deque):
        if tp is base or base in mro(tp):
            length: Any = base.__len__
            try:
                n = length(obj)
            except Exception:
                return name
            return f"{name} of {n:,}"
    if tp is types.FunctionType:
        return f"function {obj.__qualname__}"  # type: ignore[attr-defined]
    if tp is types.FrameType:
        return f"frame {frame_text(obj)}"  # type: ignore[arg-type]
    if tp in _GENERATORS:
        return f"{_GENERATORS[tp][0]} {obj.__qualname__}()"  # type: ignore[attr-defined]
    if is_a(obj, types.ModuleType):
        attrs = instance_dict(obj) or {}
        mod = attrs.get("__name__")
        return f"module {mod if type(mod) is str else '?'}"
    if is_a(obj, type):
        return f"class {type_name(obj)}"  # type: ignore[arg-type]
    return name
