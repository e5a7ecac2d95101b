"""Guard objects' own locks made fresh in a forked child.

A thread of the parent may hold one of them at the fork; that thread does not exist in the
child, so the lock would stay held there for good (a cache whose every write hangs, a
release_memory() that is "busy" forever). Every guard object owning a thread lock joins
``_live`` at construction, and the child resets each one before its code runs again.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

__all__ = ["ResetsAfterFork", "reset_after_fork"]

log = logging.getLogger("memscope.guard")


class ResetsAfterFork(Protocol):
    def _reset_after_fork(self) -> None: ...


# weak: it never keeps an object alive. By id, not a WeakSet: a mapping such as
# BoundedCache is unhashable (Mapping defines __eq__); an entry goes when its object does
_live: weakref.WeakValueDictionary[int, ResetsAfterFork] = weakref.WeakValueDictionary()


def reset_after_fork(obj: ResetsAfterFork) -> None:
    """Have ``obj._reset_after_fork()`` called in every child this process forks."""
    _live[id(obj)] = obj


def _after_fork_in_child() -> None:
    for obj in list(_live.values()):
        try:
            obj._reset_after_fork()
        except Exception:  # one object failing must not leave the others locked
            log.exception("memscope: resetting %s after fork failed", type(obj).__qualname__)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
