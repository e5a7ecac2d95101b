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
import time
from collections import deque
from collections.abc import Iterator
from types import (
    AsyncGeneratorType,
    CoroutineType,
    FrameType,
    FunctionType,
    GeneratorType,
    MethodType,
    ModuleType,
)
from typing import Any

from .._base.units import type_name
from ._frames import fast_locals
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


# --- holder paths: from an object up to a named root, by the shared referrer walk ---------

# a coroutine's (or generator's) frame attribute
_GENERATORS = {
    CoroutineType: "cr_frame",
    GeneratorType: "gi_frame",
    AsyncGeneratorType: "ag_frame",
}

# how long the holder walk of one heap scan may take, and how far up it climbs
PATH_BUDGET_SECONDS = 1.0
PATH_MAX_DEPTH = 12
_SLACK_LEVELS = 2
_FRONTIER_LIMIT = 128  # objects a level: past it, one batched heap pass a level would cost more


def _named(obj: object, modules: dict[int, str], kinds: dict[type, str]) -> str | None:
    """The root ``obj`` is, in words, if it is one (a module, class, logger, cache, frame)."""
    oid = id(obj)
    mod = modules.get(oid)
    if mod is not None:
        return f"module {mod}"
    tp = type(obj)
    kind = kinds.get(tp)
    if kind is None:
        kind = _kind_of(tp)
        if len(kinds) < 10_000:
            kinds[tp] = kind
    if not kind:
        return None
    if kind == "class":
        return f"class {_qualname(obj)}"
    if kind == "frame":
        frame: Any = obj
        if _is_ours(frame):
            return None
        return f"frame {frame.f_code.co_name}() at {frame.f_code.co_filename}:{frame.f_lineno}"
    attrs = instance_dict(obj) or {}
    if kind == "lru_cache":
        fn = attrs.get("__wrapped__")
        return f"functools.lru_cache of {_function_name(fn)}"
    if kind == "logger":
        name = attrs.get("name")
        return f"logger {safe_repr(name, 60)}" if type(name) is str else "a logger"
    if kind == "bounded_cache":
        present, name = slot_value(obj, "_name")
        return f"BoundedCache {safe_repr(name, 60)}" if present and type(name) is str else None
    if kind == "task":
        # the exact C task type: its methods are C code, no user code runs
        task: Any = obj
        if task.done():
            return None  # a finished task is not run by its loop: what holds it is the answer
        coro = task.get_coro()
        what = getattr(coro, "__qualname__", None) if type(coro) in _GENERATORS else None
        text = f"pending task {safe_repr(task.get_name(), 40)}"
        return text + (f" running {what}()" if type(what) is str else "")
    return None


def _kind_of(tp: type) -> str:
    if issubclass(tp, type):
        return "class"
    if tp is FrameType:
        return "frame"
    name = type_name(tp)
    if name == "functools._lru_cache_wrapper":
        return "lru_cache"
    if name == "memscope.guard.cache.BoundedCache":
        return "bounded_cache"
    asyncio = sys.modules.get("_asyncio")
    if asyncio is not None and tp is getattr(asyncio, "Task", None):
        return "task"
    logging = sys.modules.get("logging")
    logger = getattr(logging, "Logger", None) if logging is not None else None
    if type(logger) is type and issubclass(tp, logger):
        return "logger"
    return ""


def _function_name(fn: object) -> str:
    f: Any = fn
    if type(f) is FunctionType:
        mod = f.__module__
        return f"{mod}.{f.__qualname__}" if type(mod) is str else f.__qualname__
    return _qualname(f)


def holder_paths(
    targets: list[object],
    ignore: set[int] | None = None,
    *,
    budget_seconds: float = PATH_BUDGET_SECONDS,
    max_depth: int = PATH_MAX_DEPTH,
) -> dict[int, dict[str, str | None]]:
    """id(target) -> ``{"path", "where", "owner"}``: how a named root reaches it.

    ``path`` reads like code (``reports_app._registry['acme']['exports']``,
    ``logger 'audit' handlers``), ``where`` in words from the object up (``instance of
    app.Store attribute cache <- module app attribute store``), ``owner`` names the class
    whose instance holds it. One walk up the referrers of all targets at once, within
    ``budget_seconds``; a target that reaches no root in time is left out.
    """
    from ._chains import Walk

    modules = module_names()
    kinds: dict[type, str] = {}

    def root_of(obj: object) -> str | None:
        return _named(obj, modules, kinds)

    # a module's namespace is named already, and every function of the module refers to it
    targets = [t for t in targets if id(t) not in modules and root_of(t) is None]
    skip = set(ignore or ()) | {id(targets), id(modules), id(kinds)}
    deadline = time.monotonic() + budget_seconds
    walk: Walk[str] = Walk(
        targets, root_of, skip, edges=4, frontier_limit=_FRONTIER_LIMIT, rank=_climb_rank
    )
    out: dict[int, dict[str, str | None]] = {}
    try:
        pending = {id(t) for t in targets}
        roots: dict[int, str] = {}
        for hit in walk.hits:
            roots[hit.rid] = hit.root
        done_at: int | None = None
        while walk.frontier and walk.depth < max_depth and time.monotonic() < deadline:
            met = walk.step(deadline)
            for hit in met:
                roots[hit.rid] = hit.root
            if met:
                for t in targets:
                    if id(t) in pending and walk.path_up(t, roots, _hop_cost) is not None:
                        pending.discard(id(t))
            if not pending:
                # a way through an owner's __dict__ is a level or two longer than the way
                # through a passing list: look that much further before choosing
                done_at = walk.depth if done_at is None else done_at
                if walk.depth >= done_at + _SLACK_LEVELS:
                    break
        for t in targets:
            path = walk.path_up(t, roots, _hop_cost)
            if path is not None and len(path) > 1:
                try:
                    out[id(t)] = _name_path(path, roots[id(path[0])], modules)
                except Exception:  # words are optional; the walk's answer must not fail a scan
                    continue
    finally:
        walk.release()
    return out


def _climb_rank(owner: object) -> int:
    # which referrers to climb first when a level has too many: functions (whose globals
    # are a namespace) and frames say least about who owns an object
    if type(owner) in (FunctionType, FrameType):
        return 4
    return _owner_rank(owner)


def _hop_cost(holder: object) -> int:
    # a list, tuple or set that holds an object is more often a passer-by (a caller's
    # working list) than its owner: the way through a dict or an instance is preferred
    return 4 if is_a(holder, (list, tuple, set, frozenset, deque)) else 1


def _steps(path: list[object], modules: dict[int, str]) -> list[tuple[str, object, str]]:
    """The hops of ``path`` (root first) as (kind, holder, key): attributes fold their dict."""
    steps: list[tuple[str, object, str]] = []
    i, n = 0, len(path)
    while i < n - 1:
        holder, child = path[i], path[i + 1]
        if id(holder) in modules:
            steps.append(("attr", holder, (_key_in(holder, child) or "?").strip("'")))
        elif (
            i + 2 < n
            and is_a(child, dict)
            and not is_a(holder, dict)
            and (is_a(holder, type) or instance_dict(holder) is child)
        ):
            # a class or an instance and its __dict__ are one hop: Store.cache
            steps.append(("attr", holder, (_key_in(child, path[i + 2]) or "?").strip("'")))
            i += 2
            continue
        elif type(holder) is FunctionType and i + 3 < n and is_a(child, tuple):
            f: Any = holder
            names = f.__code__.co_freevars
            index = next((k for k, c in enumerate(f.__closure__ or ()) if c is path[i + 2]), -1)
            var = names[index] if 0 <= index < len(names) else "?"
            steps.append(("closure", holder, var))
            i += 3
            continue
        elif type(holder) is MethodType:
            steps.append(("method", holder, ""))
        elif is_a(holder, dict):
            steps.append(("key", holder, _key_in(holder, child) or "?"))
        elif is_a(holder, (list, tuple, deque)):
            steps.append(("item", holder, _key_in(holder, child) or "[?]"))
        elif is_a(holder, (set, frozenset)):
            steps.append(("member", holder, ""))
        elif type(holder) is FrameType:
            frame: Any = holder
            # read by the frame-locals reader: frame.f_locals would build a dict in the frame
            name = next((k for k, v in fast_locals(frame) if v is child), "?")
            steps.append(("local", holder, name))
        elif type(holder) in _GENERATORS:
            frame = getattr(holder, _GENERATORS[type(holder)], None)
            local = "?"
            if type(frame) is FrameType:
                local = next((k for k, v in fast_locals(frame) if v is child), "?")
            steps.append(("coroutine", holder, local))
        elif type_name(type(holder)) == "functools.partial":
            steps.append(("partial", holder, ""))
        else:
            found = _key_in(holder, child)
            steps.append(("attr", holder, found.strip("'")) if found else ("ref", holder, ""))
        i += 1
    return steps


def _name_path(path: list[object], root: str, modules: dict[int, str]) -> dict[str, str | None]:
    steps = _steps(path, modules)
    # as code, root first
    if root.startswith("module "):
        text = root[len("module ") :]
    elif root.startswith("class "):
        text = root[len("class ") :]
    else:
        text = root
    words: list[str] = []
    owner: str | None = None
    special = not root.startswith(("module ", "class ", "frame "))
    root_named = False
    for n, (kind, holder, key) in enumerate(steps):
        last = n == len(steps) - 1
        if n == 0 and special and kind == "ref":
            # a cache wrapper holds its storage from C: the root's name says it all
            words.append(root)
            root_named = True
            owner = root
        elif kind == "attr":
            if n == 0 and root.startswith("logger ") and key == "handlers":
                text += " handlers"
            else:
                text += f".{key}"
            if id(holder) in modules:
                words.append(f"module {modules[id(holder)]} attribute {key}")
            elif is_a(holder, type):
                words.append(f"class {_qualname(holder)} attribute {key}")
            elif n == 0 and special:
                words.append(f"{root} attribute {key}")
                root_named = True
            else:
                words.append(f"instance of {_qualname(holder)} attribute {key}")
            if last and not is_a(holder, (type, ModuleType)) and id(holder) not in modules:
                owner = root if n == 0 and special else _qualname(holder)
        elif kind == "key":
            text += key if key.startswith("key ") else f"[{key}]"
            words.append(f"dict key {key}")
        elif kind == "item":
            text += key
            words.append(f"item {key} of a {type(holder).__name__}")
        elif kind == "member":
            text += " (a member)"
            words.append(f"item of a {type(holder).__name__}")
        elif kind == "closure":
            fname = _function_name(holder)
            text += f" -> closure of {fname} ({key})"
            words.append(f"closure variable {key} of function {fname}")
        elif kind == "method":
            m: Any = holder
            text += f" -> bound method {_function_name(m.__func__)}"
            words.append(f"bound method {_function_name(m.__func__)}")
        elif kind == "local":
            text = f"local {key} of {root}"
            words.append(f"local {key} in {root[len('frame ') :]}")
        elif kind == "coroutine":
            c: Any = holder
            if n == 0 or text == root:
                text += f" local {key}"
            else:
                text += f" -> {c.__qualname__}() local {key}"
            words.append(f"local {key} of {type(holder).__name__} {c.__qualname__}()")
        elif kind == "partial":
            text += " -> functools.partial"
            words.append("functools.partial")
        else:
            text += f" -> {type(holder).__name__}"
            words.append(f"referenced by a {_qualname(holder)}")
    if special and not root_named:
        words.insert(0, root)
    return {"path": text, "where": " <- ".join(reversed(words)), "owner": owner}


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
