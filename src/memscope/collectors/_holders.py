"""Where objects live and what they are, in words, without running user code.

``describe_owners`` names who holds an object ("module app attribute _cache",
"instance of app.Store attribute cache <- module app attribute store") from one
``gc.get_referrers`` pass and one more hop; ``summarize_container`` and ``safe_repr``
describe an object by its type and plain scalars only. The heap walk uses them for the
containers and large objects it keeps.
"""

from __future__ import annotations

import gc
import itertools
import sys
from collections import deque
from collections.abc import Iterator
from types import (
    FrameType,
    FunctionType,
    ModuleType,
)
from typing import Any

from .._base.units import type_name
from ._safe import base_iter, base_len, base_of, instance_dict, is_a, slot_value


def module_names() -> dict[int, str]:
    """id(module namespace) -> the module's name; a module under two names (``__main__``
    is ``__mp_main__`` too once multiprocessing is imported) keeps the first it was given."""
    names: dict[int, str] = {}
    for name, module in list(sys.modules.items()):
        if is_a(module, ModuleType):
            names.setdefault(id(vars(module)), name)
    return names


def _find_referrers(
    targets: list[object], ignore: set[int], per_target: int = 4
) -> dict[int, list[object]]:
    """id(target) -> up to ``per_target`` gc-tracked objects that refer to it directly."""
    found: dict[int, list[object]] = {id(t): [] for t in targets}
    if not targets:
        return found
    skip = ignore | {id(targets), id(found)}
    # one C-level pass over the heap for all targets together
    referrers = gc.get_referrers(*targets)
    skip.add(id(referrers))
    for owner in referrers:
        if id(owner) in skip or (type(owner) is FrameType and _is_ours(owner)):
            continue
        for ref in gc.get_referents(owner):
            lst = found.get(id(ref))
            if lst is not None and len(lst) < per_target and not any(o is owner for o in lst):
                lst.append(owner)
    return found


def _is_ours(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and name.startswith("memscope.")


def _qualname(obj: object) -> str:
    return type_name(obj if is_a(obj, type) else type(obj))  # type: ignore[arg-type]


def _key_in(container: object, target: object) -> str | None:
    """Where ``target`` sits inside ``container`` (a key, index or attribute), bounded effort."""
    box: Any = container
    if is_a(box, dict):
        for k, v in itertools.islice(dict.items(box), 200_000):
            if v is target:
                return safe_repr(k, 60)
            if k is target:
                return f"key {safe_repr(k, 30)}"
        return None
    if is_a(container, (list, tuple)):
        for idx, v in enumerate(itertools.islice(base_iter(container), 200_000)):
            if v is target:
                return f"[{idx}]"
        return None
    attrs = instance_dict(container)
    if attrs is not None:
        for k, v in attrs.items():
            if v is target:
                return str(k)
    for slot in _slots(type(container)):
        present, value = slot_value(container, slot)
        if present and value is target:
            return slot
    return None


def _slots(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = type.__dict__["__dict__"].__get__(klass).get("__slots__", ())
        if type(slots) is str:
            slots = (slots,)
        yield from (s for s in slots if s not in ("__dict__", "__weakref__"))


def describe_owners(targets: list[object], ignore: set[int] | None = None) -> dict[int, str]:
    """id(target) -> a short hint like ``module app.cache attribute _models``."""
    modules = module_names()
    hints: dict[int, str] = {}
    for t in targets:
        if id(t) in modules:
            hints[id(t)] = f"namespace of module {modules[id(t)]}"
    skip = set(ignore or ()) | {id(targets), id(hints), id(modules)}
    # the gc lists young objects first, so temporary lists would crowd out the module dict
    # or instance that really holds a target: take many referrers, keep the best few
    first = _find_referrers([t for t in targets if id(t) not in hints], skip, per_target=64)
    for owners in first.values():
        owners.sort(key=_owner_rank)
        del owners[4:]
    # an anonymous holder (a dict that is no module's namespace, a list, an instance) is named
    # by one more hop: who holds the holder
    holders = [
        owner
        for owners in first.values()
        for owner in owners
        if not is_a(owner, (ModuleType, FrameType, type)) and id(owner) not in modules
    ]
    skip.add(id(holders))
    skip.add(id(first))
    skip.update(id(v) for v in first.values())
    second = _find_referrers(holders, skip, per_target=3) if holders else {}
    by_id = {id(t): t for t in targets}
    for tid, owners in first.items():
        target = by_id[tid]
        parts: list[str] = []
        for owner in sorted(owners, key=_owner_rank):
            text = _describe(owner, target, modules, second)
            if text and text not in parts:
                parts.append(text)
            if len(parts) >= 2:
                break
        if parts:
            hints[tid] = "; ".join(parts)
    return hints


def _owner_rank(owner: object) -> int:
    if is_a(owner, dict):
        return 0
    if is_a(owner, FrameType):
        return 3
    if is_a(owner, (list, tuple, set, frozenset, deque)):
        return 2
    return 1


def _describe(
    owner: object,
    target: object,
    modules: dict[int, str],
    second: dict[int, list[object]],
    depth: int = 0,
) -> str | None:
    """How ``owner`` holds ``target``, then (one hop up) how ``owner`` is held."""
    if is_a(owner, ModuleType) or (
        is_a(owner, FunctionType) and owner.__globals__ is target  # type: ignore[attr-defined]
    ):
        return None  # a module or function pointing at a namespace dict says nothing new
    key = _key_in(owner, target)
    attr = key.strip("'") if key else "?"
    if is_a(owner, dict):
        mod = modules.get(id(owner))
        if mod is not None:
            return f"module {mod} attribute {attr}"
        for up in second.get(id(owner), ()):
            if is_a(up, type) and any(
                v is target for v in type.__dict__["__dict__"].__get__(up).values()
            ):
                return f"class {_qualname(up)} attribute {attr}"
            if instance_dict(up) is owner:
                return f"instance of {_qualname(up)} attribute {attr}" + _above(
                    up, modules, second, depth
                )
        return f"dict key {key}" + _above(owner, modules, second, depth) if key else "a dict"
    if type(owner) is FrameType:
        code = owner.f_code
        name = next((k for k, v in owner.f_locals.items() if v is target), "?")
        return f"local {name} in {code.co_name}() at {code.co_filename}:{owner.f_lineno}"
    if type(owner) is FunctionType:
        return f"function {owner.__module__}.{owner.__qualname__} closure/defaults"
    if is_a(owner, (list, tuple, set, frozenset, deque)):
        where = f"item {key} of" if key else "item of"
        return f"{where} a {type(owner).__name__} of {base_len(owner) or 0:,}" + _above(
            owner, modules, second, depth
        )
    if is_a(owner, type):
        return f"class {_qualname(owner)} attribute {attr}"
    if key is not None:
        return f"instance of {_qualname(owner)} attribute {key}" + _above(
            owner, modules, second, depth
        )
    return f"referenced by a {_qualname(owner)}"


def _above(
    holder: object, modules: dict[int, str], second: dict[int, list[object]], depth: int
) -> str:
    if depth >= 1:
        return ""
    for up in sorted(second.get(id(holder), ()), key=_owner_rank):
        text = _describe(up, holder, modules, {}, depth + 1)
        if text:
            return f" <- {text}"
    return ""


_SAFE_SCALARS = (str, bytes, int, float, bool, type(None))


def safe_repr(obj: object, limit: int = 40) -> str:
    """repr() only for plain scalars, truncated; other objects by type name (no user code runs)."""
    o: Any = obj
    tp = type(o)
    if tp in _SAFE_SCALARS:
        if (tp is str or tp is bytes) and len(o) > limit:
            text = repr(o[:limit])
            return f"{text}... ({len(o):,} {'chars' if tp is str else 'bytes'})"
        if tp is int and o.bit_length() > 128:
            return f"<int of {o.bit_length()} bits>"
        return repr(o)
    return f"<{_qualname(o)}>"


def summarize_container(obj: object, sample: int = 3) -> str:
    """``dict of 50,000 items; keys like 'a', 'b'; values bytes`` without running user code."""
    o: Any = obj
    found = base_len(o)
    n = -1 if found is None else found
    kind = _qualname(o)
    head = f"{kind} of {n:,} items" if n >= 0 else kind
    base: Any = base_of(o)
    if base in (str, bytes, bytearray):
        start = base.__getitem__(o, slice(0, 30))
        return f"{kind} of {n:,} {'chars' if base is str else 'bytes'}: {safe_repr(start)}"
    try:
        if base is dict:
            pairs: list[tuple[object, object]] = list(itertools.islice(dict.items(o), sample))
            keys = ", ".join(safe_repr(k, 24) for k, _ in pairs)
            vtypes = sorted({_qualname(v) for _, v in pairs})
            return f"{head}; keys like {keys}; values {'/'.join(vtypes)}" if pairs else head
        if base is not None:
            items = list(itertools.islice(base_iter(o), sample))
            shown = ", ".join(safe_repr(x, 24) for x in items)
            return f"{head}: {shown}" if items else head
    except Exception:  # changed size during iteration: the head is still true
        return head
    return head


def held_types(obj: object, sample: int = 5) -> list[str]:
    """Type names of a few of a container's items (keys, values, and one level into keys).

    For a cache keyed by argument tuples (``functools.lru_cache``) that names the
    arguments' types too. Read by the built-in bases' own methods: no user code runs.
    """
    o: Any = obj
    base: Any = base_of(o)
    found: dict[str, None] = {}
    try:
        if base is dict:
            pairs = list(itertools.islice(dict.items(o), sample))
            items: list[object] = [v for _, v in pairs] + [k for k, _ in pairs]
        elif base in (list, tuple, set, frozenset, deque):
            items = list(itertools.islice(base_iter(o), sample))
        else:
            return []
        for item in items:
            found[_qualname(item)] = None
            if is_a(item, (tuple, list)):
                for inner in itertools.islice(base_iter(item), sample):
                    found[_qualname(inner)] = None
    except Exception:  # changed size during iteration: what was read is still true
        pass
    return list(found)[:8]
