"""What keeps objects alive from outside the heap: the roots a reference chain starts at.

A root is an object the interpreter holds on its own: a module's namespace (and
``sys.modules`` itself), a class, the frames of every running thread, a pending asyncio
task, and the callbacks C code keeps where the gc cannot see them (signal handlers, trace
and profile functions). Frames of the thread that calls ``explain()`` are roots of a lower
rank: the caller's own locals are rarely the answer it is looking for.
"""

from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass, field

from .._base.aio import live_tasks
from ..collectors._chains import is_ours
from ._labels import frame_locals, frame_text, instance_dict, is_a, key_text, short_type

__all__ = ["Root", "Roots", "find_roots", "is_ours"]

_CO_OPTIMIZED = 0x1  # a function's frame: f_locals is a snapshot, not the namespace itself

RANK_ROOT = 0
RANK_CALLER = 1  # the calling thread's frames: shown after every other chain


@dataclass(frozen=True)
class Root:
    """One root: how to name it, and its rank (lower is shown first)."""

    kind: str  # module, sys.modules, class, thread, task, signal, trace
    text: str
    rank: int = RANK_ROOT


@dataclass
class Roots:
    """Roots by id, with the objects that must stay alive while the search runs."""

    by_id: dict[int, Root] = field(default_factory=dict)
    # id -> the root object itself (frames made by sys._current_frames() live as long)
    objects: dict[int, object] = field(default_factory=dict)

    def add(self, obj: object, root: Root, *, replace: bool = True) -> None:
        """Record ``obj`` as ``root`` (keeping the object while the search runs)."""
        if not replace and id(obj) in self.by_id:
            return
        self.by_id[id(obj)] = root
        self.objects[id(obj)] = obj

    def get(self, obj: object) -> Root | None:
        """The root ``obj`` is, if it is one (a class is always one)."""
        found = self.by_id.get(id(obj))
        if found is not None:
            return found
        if is_a(obj, type):
            return Root("class", f"class {_class_name(obj)}")
        return None

    def release(self) -> None:
        """Drop the frames and tasks held for the search."""
        self.by_id.clear()
        self.objects.clear()


def _class_name(cls: object) -> str:
    from .._base.units import type_name

    return type_name(cls)  # type: ignore[arg-type]


def _thread_names() -> dict[int, str]:
    names: dict[int, str] = {}
    active = getattr(sys.modules.get("threading"), "_active", None)
    if type(active) is not dict:
        return names
    for ident, thread in list(active.items()):
        attrs = instance_dict(thread)
        name = attrs.get("_name") if attrs is not None else None
        names[ident] = name if type(name) is str else f"thread {ident}"
    return names


def find_roots() -> Roots:
    """Every root of this process, now."""
    roots = Roots()
    for name, module in list(sys.modules.items()):
        if module is None or not is_a(module, types.ModuleType):
            continue
        namespace = instance_dict(module)
        if namespace is not None and type(name) is str:
            roots.add(namespace, Root("module", f"module {name}"))
    roots.add(sys.modules, Root("sys.modules", "sys.modules"))
    _add_thread_frames(roots)
    _add_tasks(roots)
    _add_callbacks(roots)
    return roots


def _add_thread_frames(roots: Roots) -> None:
    names = _thread_names()
    me = threading.get_ident()
    # the calling thread's top frame is this one: held by a local here, it would hold
    # itself (and, through f_back, explain()'s frame with everything it made) in a cycle
    # that only a collection frees; the locals are dropped before returning
    tops = sys._current_frames()
    for ident in list(tops):
        thread = names.get(ident, f"thread {ident}")
        frame: types.FrameType | None = tops.pop(ident)
        while frame is not None:
            if not is_ours(frame):
                rank = RANK_CALLER if ident == me else RANK_ROOT
                text = f"thread {thread} frame {frame_text(frame)}"
                roots.add(frame, Root("thread", text, rank))
                if ident != me and frame.f_code.co_flags & _CO_OPTIMIZED:
                    # (3.11) the gc does not traverse a running frame's locals; the snapshot
                    # dict f_locals makes is traversed, so the search meets it as a referrer.
                    # The caller's own thread is left alone: its locals are not the answer,
                    # and a snapshot there would outlive this call holding the object.
                    snapshot = frame_locals(frame)
                    if snapshot:
                        roots.add(snapshot, Root("frame", text, rank))
            frame = frame.f_back
        del frame


def _add_tasks(roots: Roots) -> None:
    for task in live_tasks():
        state = getattr(task, "_state", "PENDING")
        if state != "PENDING":
            continue  # a finished task is not run by its loop any more: something else holds it
        try:
            name = task.get_name()
            coro = task.get_coro()
        except Exception:
            continue
        what = getattr(coro, "__qualname__", None)
        text = f"pending asyncio task {key_text(name)}"
        if type(what) is str:
            text += f" running {what}()"
        roots.add(task, Root("task", text))


def _add_callbacks(roots: Roots) -> None:
    # C keeps these where gc.get_referrers cannot see them: they have to be named here
    signal = sys.modules.get("signal")
    if signal is not None:
        for num in signal.valid_signals():
            try:
                handler = signal.getsignal(num)
                label = signal.Signals(num).name
            except (ValueError, OSError):
                continue
            if handler is None or type(handler) is int or is_a(handler, int):
                continue
            text = f"signal handler {label} ({_callable_text(handler)})"
            roots.add(handler, Root("signal", text), replace=False)
    for what, hook in (("trace", sys.gettrace()), ("profile", sys.getprofile())):
        if hook is not None:
            text = f"sys.set{what}() hook ({_callable_text(hook)})"
            roots.add(hook, Root("trace", text), replace=False)


def _callable_text(fn: object) -> str:
    if type(fn) is types.FunctionType:
        return f"function {fn.__qualname__}"
    return short_type(fn)
