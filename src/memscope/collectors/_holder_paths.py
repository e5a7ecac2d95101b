"""Holder paths: from objects up to a named root, in words that read like code.

``holder_paths`` walks up the referrers of many objects at once (the shared walk of
``_chains``) until each meets a root (a module, a class, a logger, an lru_cache, a
BoundedCache, a pending task, a running frame), and names the way down:
``reports_app._registry['acme']['exports']``. The heap walk uses it for the containers
and large objects it keeps; compare()'s findings quote it.
"""

from __future__ import annotations

import sys
import time
from collections import deque
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
from ._holders import _is_ours, _key_in, _owner_rank, _qualname, module_names, safe_repr
from ._safe import instance_dict, is_a, slot_value

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
