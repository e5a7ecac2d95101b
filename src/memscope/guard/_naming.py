"""The name a guard object registers under: the caller's, or where the user's code made it."""

from __future__ import annotations

import sys

from .._base.tracking import default_name, track


def _is_ours(module: object) -> bool:
    return isinstance(module, str) and (
        module == "memscope.guard" or module.startswith("memscope.guard.")
    )


def name_for(obj: object, kind: str, name: str | None) -> str:
    """``name``, else :func:`default_name` of the first frame outside memscope.guard.

    Frames of memscope.guard (iter_sse making a buffer, @bounded_cache making a cache)
    and of ``obj``'s own constructors (a subclass's ``super().__init__()``) are
    skipped, so the name is that of the line in the user's code that made it.
    """
    if name is not None:
        return name
    depth = 1  # default_name counts from our caller (the constructor asking)
    frame = sys._getframe(1)
    try:
        while frame.f_back is not None:
            code = frame.f_code
            if not _is_ours(frame.f_globals.get("__name__")) and not (
                code.co_name == "__init__" and frame.f_locals.get("self") is obj
            ):
                break
            frame = frame.f_back
            depth += 1
        # default_name(depth=d) reads the frame d above name_for, which is `frame`
        return default_name(kind, depth=depth)
    finally:
        del frame


def register(obj: object, kind: str, name: str | None, *, clear: bool = False) -> str:
    """Track ``obj`` (weakly) under its name (see :func:`name_for`); returns the name."""
    resolved = name_for(obj, kind, name)
    track(obj, name=resolved, clear=clear)
    return resolved
