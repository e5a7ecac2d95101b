"""The name a guard object registers under: the caller's, or where the user's code made it."""

from __future__ import annotations

import sys
from types import FrameType

from .._base.tracking import default_name, track


def _is_ours(module: object) -> bool:
    return isinstance(module, str) and (
        module == "memscope.guard" or module.startswith("memscope.guard.")
    )


def _user_frame(depth: int) -> tuple[FrameType, int]:
    """The first frame, from ``depth`` above our caller up, outside memscope.guard."""
    frame = sys._getframe(depth + 1)
    while frame.f_back is not None and _is_ours(frame.f_globals.get("__name__")):
        frame = frame.f_back
        depth += 1
    return frame, depth


def site_name(kind: str) -> str:
    """``Kind@module:line`` of the user's line that had memscope make an object for it.

    For objects the user's line did not assign (iter_sse's buffer): naming it after
    the assignment on that line, as :func:`default_name` would, names the wrong thing.
    """
    frame, _ = _user_frame(1)
    try:
        module = frame.f_globals.get("__name__")
        return f"{kind}@{module if isinstance(module, str) else '?'}:{frame.f_lineno}"
    finally:
        del frame


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
