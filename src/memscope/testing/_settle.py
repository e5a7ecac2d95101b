"""Settling the process before a reading: interpreter caches cleared, garbage collected,
other threads given time, and warnings of repeated runs kept quiet."""

from __future__ import annotations

import gc
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import suppress

from memscope._base.proc import fd_count

from ._options import CheckOptions

__all__ = ["QuietRepeats", "abc_classes", "clear_interpreter_caches", "settle"]

_SETTLE_TRIES = 10


def abc_classes() -> tuple[type, ...]:
    """Every class with ABC caches under the stdlib's ABC roots (a bounded walk)."""
    seen: set[int] = set()
    found: list[type] = []
    roots: list[type] = []
    for name in ("collections.abc", "numbers", "io", "contextlib", "os"):
        mod = sys.modules.get(name)
        if mod is None:
            continue
        for value in vars(mod).values():
            if isinstance(value, type) and hasattr(value, "_abc_caches_clear"):
                roots.append(value)
    # bounded walk: a service with a huge class tree still clears in finite time
    while roots and len(seen) < 20_000:
        cls = roots.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        if getattr(cls, "_abc_caches_clear", None) is not None:
            found.append(cls)
        try:
            roots.extend(type.__subclasses__(cls))
        except TypeError:
            continue
    return tuple(found)


def _clear_abc_caches(classes: Sequence[type]) -> None:
    for cls in classes:
        clear = getattr(cls, "_abc_caches_clear", None)
        if clear is None:
            continue
        # a try per class, not a suppress() context: a settle clears about 80 of them,
        # twice a reading, and the context objects were a third of the settle's time
        try:
            clear()
        except Exception:  # a class whose caches cannot be cleared keeps them
            continue


def clear_interpreter_caches(abcs: Sequence[type] | None = None) -> None:
    """Clear the caches of already-imported stdlib modules that fill on first use.

    ``abcs``: the ABC classes whose caches to clear, as :func:`abc_classes` found them
    (found now when None). A check finds them once, outside its measured rounds: the
    walk's own set and lists are malloc'd, and in a process of a few hundred ABCs
    glibc's handling of them moved malloc'd bytes by +-656 on every reading.
    """
    mods = sys.modules
    # only modules already loaded: importing one here would itself look like growth
    calls: list[tuple[str, str]] = [
        ("re", "purge"),
        ("struct", "_clearcache"),
        ("linecache", "clearcache"),
        ("urllib.parse", "clear_cache"),
        ("importlib", "invalidate_caches"),
    ]
    for modname, attr in calls:
        mod = mods.get(modname)
        func = getattr(mod, attr, None) if mod is not None else None
        if callable(func):
            with suppress(Exception):
                func()
    typing_mod = mods.get("typing")
    for cleanup in getattr(typing_mod, "_cleanups", ()):
        with suppress(Exception):
            cleanup()
    fnmatch_mod = mods.get("fnmatch")
    compiled = getattr(fnmatch_mod, "_compile_pattern", None)
    if compiled is not None and hasattr(compiled, "cache_clear"):
        compiled.cache_clear()
    inspect_mod = mods.get("inspect")
    for name in ("_filesbymodname", "modulesbyfile"):
        cache = getattr(inspect_mod, name, None)
        if isinstance(cache, dict):
            cache.clear()
    _clear_abc_caches(abc_classes() if abcs is None else abcs)
    for name in ("_clear_internal_caches", "_clear_type_cache"):
        func = getattr(sys, name, None)
        if callable(func):
            func()
            break


def settle(opts: CheckOptions, generation: int = 2, abcs: Sequence[type] | None = None) -> None:
    """Clear caches (the interpreter's and ``opts.clear``), collect, and wait for other threads.

    ``generation`` 1 collects only the young generations: before ``gc.freeze()`` that is
    all it takes (older garbage is frozen with the rest and never moves while frozen).
    """
    clear_interpreter_caches(abcs)
    for func in opts.clear:
        func()
    for _ in range(3):
        if not gc.collect(generation):
            break
    if threading.active_count() > 1:
        # other threads may still be finishing what the call started (a server thread
        # answering, a worker exiting): let them run until two readings agree
        seen = (sys.getallocatedblocks(), threading.active_count(), fd_count())
        for _ in range(_SETTLE_TRIES):
            time.sleep(0.001)  # hands the GIL to them
            now = (sys.getallocatedblocks(), threading.active_count(), fd_count())
            if now == seen:
                break
            seen = now
            gc.collect()  # what they just dropped


def _drop_warning(*args: object, **kwargs: object) -> None:
    """showwarning for repeated runs: shown once already, not recorded again."""


class QuietRepeats:
    """Context for runs after the first: warnings are not shown or recorded again.

    pytest records every warning of a test in a list, so a call that warns would add a
    WarningMessage per run and look like a leak. Filters are untouched: "error" still raises.
    """

    def __enter__(self) -> None:
        self._saved = warnings.showwarning
        warnings.showwarning = _drop_warning

    def __exit__(self, *exc: object) -> None:
        warnings.showwarning = self._saved
