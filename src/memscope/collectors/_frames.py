"""What the running frames of every thread hold in their local variables, read without side effects.

The census starts from the objects the gc tracks. A frame that is running in a thread
is not one of them on 3.11+: its locals live in the interpreter's own frame record,
which the gc does not show, so a string that only a running loop's local holds (a
growing ``buffer``) would be invisible. Suspended generators and coroutines are no
problem (the gc shows their locals), nor are frames on 3.10 (real gc-tracked objects).

``frame.f_locals`` would give the values, but on 3.10 to 3.12 it builds a dict inside the
frame and keeps it, which changes the heap being measured and the program's frames.
So the fast-locals array is read directly, on 3.11 and 3.12, by address: each layout
is checked against the frame first (the record must point back at this frame and at
its code object, both known by ``id()``) and a frame that does not match is skipped,
never read. 3.13+ has the PEP 667 proxy, which reads the same array without a dict.
No user code runs: only pointers are read and the objects' identities compared.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Generator, Iterator
from types import CellType, CodeType, FrameType

# per thread, the frames walked from the innermost outwards; deeper frames are skipped
MAX_FRAMES_PER_THREAD = 256
# the most (value, hint) pairs one call returns, whatever the number of threads
MAX_VALUES = 100_000

_PTR = ctypes.sizeof(ctypes.c_void_p)
# offsets in bytes: PyFrameObject.f_frame, then in _PyInterpreterFrame f_code, frame_obj
# and localsplus (64-bit builds; 32-bit ones are read through the proxy or not at all)
_LAYOUTS: dict[tuple[int, int], tuple[int, int, int, int]] = {
    (3, 11): (24, 32, 40, 72),
    (3, 12): (24, 0, 48, 72),
}


def _local_names(code: CodeType) -> list[str]:
    """The names of the fast-locals slots: arguments and locals, then cells, then free vars."""
    names = list(code.co_varnames)
    names.extend(c for c in code.co_cellvars if c not in code.co_varnames)
    names.extend(code.co_freevars)
    return names


# the slot arrays are viewed in chunks of this many slots, through two ctypes array types
# made here, once: a type made for each new frame size on first use would be a new class
# (and dict) appearing in the heap a no-growth check measures
_CHUNK = 128
_POINTERS = ctypes.c_void_p * _CHUNK
_OBJECTS = ctypes.py_object * _CHUNK
_UNBOUND = object()


def _read_slots(
    frame: FrameType, code: CodeType, layout: tuple[int, int, int, int], count: int
) -> list[object] | None:
    """The ``count`` fast-locals slots of a running frame (``_UNBOUND`` for a NULL one).

    None if the frame's record is not (or stops being) this frame's. Another thread may
    run this frame on, return from it and reuse its record's memory between any two of
    this thread's bytecodes that can switch threads (a call, a loop's jump back), and a
    pointer read from a record that moved on can be anything. So each slot is read, and
    its object taken, right after the checks that the frame still points at the record
    and the record at this frame and this code, with no call in between (plain attribute
    reads and subscripts of ctypes views made beforehand, and integer compares, none of
    which lets another thread run or allocates a tracked object).
    """
    f_frame_at, code_at, frame_obj_at, localsplus_at = layout
    frame_id, code_id = id(frame), id(code)
    link = ctypes.c_void_p.from_address(frame_id + f_frame_at)
    record = link.value or 0
    if not record:
        return None
    record_frame = ctypes.c_void_p.from_address(record + frame_obj_at)
    record_code = ctypes.c_void_p.from_address(record + code_at)
    at = record + localsplus_at
    views = [
        (_POINTERS.from_address(at + start * _PTR), _OBJECTS.from_address(at + start * _PTR))
        for start in range(0, count, _CHUNK)
    ]
    values: list[object] = [_UNBOUND] * count
    for i in range(count):
        pointers, objects = views[i // _CHUNK]
        k = i % _CHUNK
        # from here to the store: no call, nothing another thread can run during
        if link.value != record or record_frame.value != frame_id or record_code.value != code_id:
            return None
        if pointers[k]:
            values[i] = objects[k]
    return values


def _fast_locals_by_address(
    frame: FrameType, layout: tuple[int, int, int, int]
) -> list[tuple[str, object]]:
    code = frame.f_code
    names = _local_names(code)
    slots = _read_slots(frame, code, layout, len(names))
    if slots is None:
        return []
    plain = len(code.co_varnames)
    cellvars = code.co_cellvars
    out: list[tuple[str, object]] = []
    for i, value in enumerate(slots):
        if value is _UNBOUND:
            continue
        name = names[i]
        if i >= plain or name in cellvars:
            # a cell or free variable's slot holds its cell: the value is the content
            if type(value) is not CellType:
                continue
            try:
                value = value.cell_contents
            except ValueError:  # an empty cell
                continue
        out.append((name, value))
    return out


def _fast_locals_by_proxy(frame: FrameType) -> list[tuple[str, object]]:
    proxy = frame.f_locals
    if type(proxy).__name__ != "FrameLocalsProxy":  # a module or class body: a real dict
        return []
    return list(proxy.items())


_LAYOUT = _LAYOUTS.get(sys.version_info[:2])


def _fast_locals_by_this_layout(frame: FrameType) -> list[tuple[str, object]]:
    assert _LAYOUT is not None
    return _fast_locals_by_address(frame, _LAYOUT)


def _reader() -> object:
    # module-level functions only: a reader made on first use (a lambda) would be a new
    # object, and new names, appearing between the first two heap walks
    if sys.version_info >= (3, 13):
        return _fast_locals_by_proxy
    if _LAYOUT is None or _PTR != 8 or sys.implementation.name != "cpython":
        return None
    return _fast_locals_by_this_layout


def _check(reader: object) -> bool:
    """Read a frame whose locals are known; the reader is used only if it finds them exactly."""
    if not callable(reader):
        return False
    sentinel_a, sentinel_b = object(), "memscope-frame-probe"

    def probe(read: object, a: object, b: object) -> list[tuple[str, object]]:
        c = [a]
        del c  # a deleted local reads as unbound
        cell = b

        def inner() -> object:
            return cell

        del inner
        return read(sys._getframe())  # type: ignore[operator,no-any-return]

    try:
        got = probe(reader, sentinel_a, sentinel_b)
    except Exception:
        return False
    names = [n for n, _ in got]
    values = dict(got)
    return (
        names == ["read", "a", "b", "cell"]
        and values["a"] is sentinel_a
        and values["b"] is sentinel_b
        and values["cell"] is sentinel_b
    )


_READER: object = None
_CHECKED = False
_lock = threading.Lock()


def available() -> bool:
    """True when running frames' locals can be read on this interpreter (checked once)."""
    global _READER, _CHECKED
    if not _CHECKED:
        with _lock:
            if not _CHECKED:
                candidate = _reader()
                _READER = candidate if _check(candidate) else None
                _CHECKED = True
    return _READER is not None


def needed() -> bool:
    """False on 3.10, where running frames are gc-tracked objects the walk already reaches."""
    return sys.version_info >= (3, 11)


def fast_locals(frame: FrameType) -> list[tuple[str, object]]:
    """The (name, value) pairs of a frame's bound local variables; [] if they cannot be read."""
    if not available():
        return []
    try:
        return _READER(frame)  # type: ignore[operator,no-any-return]
    except Exception:  # an unexpected frame state: nothing read, nothing broken
        return []


def _own(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and (name == "memscope" or name.startswith("memscope."))


def _where(frame: FrameType, name: str, runner: str) -> str:
    module = frame.f_globals.get("__name__")
    module = module if isinstance(module, str) else "?"
    code = frame.f_code
    function = getattr(code, "co_qualname", code.co_name)
    return f"local `{name}` of {module}.{function}, {runner}"


def _threads_by_ident() -> dict[int, str]:
    return {t.ident: t.name for t in threading.enumerate() if t.ident is not None}


def _frames(current: bool = True) -> Generator[tuple[FrameType, str], None, None]:
    names = _threads_by_ident()
    # this generator's own frame is the calling thread's top: left in the dict (which
    # this frame holds) it would hold itself in a cycle that only a collection frees, so
    # each top frame is taken out of the dict before anything is yielded, and this
    # thread's walk starts at the caller
    tops = sys._current_frames()
    me = threading.get_ident()
    own = tops.pop(me, None)
    mine = own.f_back if own is not None and current else None
    del own
    for ident in [me, *tops] if current else list(tops):
        thread = names.get(ident, f"thread {ident}")
        frame: FrameType | None = mine if ident == me else tops.pop(ident)
        mine = None
        depth = 0
        while frame is not None and depth < MAX_FRAMES_PER_THREAD:
            if not _own(frame):
                yield frame, thread
            frame = frame.f_back
            depth += 1


# code flags of frames owned by a generator, coroutine or async generator object
# (CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR; inspect's values,
# not imported: inspect costs milliseconds to import)
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200

# coroutines followed down one task's await chain
MAX_AWAIT_DEPTH = 32
_TASK_MODULES = ("_asyncio", "asyncio.tasks")


def _suspended_frames() -> Iterator[tuple[FrameType, str]]:
    """The frames of every pending asyncio task's coroutines, down its await chain."""
    from .._base.aio import live_tasks

    for task in live_tasks():
        # only asyncio's own Task types: a subclass's methods would be user code
        if type(task).__module__ not in _TASK_MODULES or task.done():
            continue
        label = f"task {task.get_name()!r}"
        coro = task.get_coro()
        for _ in range(MAX_AWAIT_DEPTH):
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if not isinstance(frame, FrameType):
                break
            yield frame, label
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def running_locals(
    *, tasks: bool = False, labels: bool = True, current: bool = True
) -> list[tuple[object, str, bool]]:
    """(value, "local `x` of mod.fn, thread 'name'", direct) for every running frame's locals.

    ``direct`` is False for a cell or free variable: its cell is a gc-tracked object, so a
    heap walk already reaches the value through it and must not count it again. Frames of
    memscope's own code are left out (the walk's own variables are not the program's).
    Holds the values strongly: the caller drops the list when it is done.

    ``tasks=True`` adds the locals of pending asyncio tasks' suspended coroutines, named
    by task, never direct: the gc shows a suspended coroutine's locals, so the walk has
    them already; what this adds is their name. (Reading ``cr_frame`` gives a suspended
    coroutine a frame object, about a hundred bytes that live as long as it does.)
    ``labels=False`` leaves every label empty (a census that only counts needs none, and
    naming each of a test runner's ~150 locals cost it a third of its frame walk).
    ``current=False`` leaves out the calling thread's frames (see ``count_types``).
    """
    if not available():
        return []
    out: list[tuple[object, str, bool]] = []
    # the walk holds this function's own frame object (sys._current_frames() made it):
    # the generator is closed before returning, or this frame, keeping it as a local,
    # would hold it (and the frame it is at) in a cycle once it returns
    frames = _frames(current) if needed() else None
    try:
        for frame, thread in frames or ():
            code = frame.f_code
            cells = set(code.co_cellvars) | set(code.co_freevars)
            # a running generator's or coroutine's frame belongs to its (tracked) object,
            # which shows the gc its locals: the walk reaches them there already
            owned = bool(code.co_flags & _GENERATOR_FLAGS)
            runner = f"thread {thread!r}"
            for name, value in fast_locals(frame):
                direct = not owned and name not in cells
                out.append((value, _where(frame, name, runner) if labels else "", direct))
                if len(out) >= MAX_VALUES:
                    return out
            del frame
    finally:
        if frames is not None:
            frames.close()
        del frames
    if tasks:
        try:
            suspended = list(_suspended_frames())
        except Exception:  # a task in an odd state: the names are optional
            suspended = []
        for frame, task in suspended:
            for name, value in fast_locals(frame):
                out.append((value, _where(frame, name, task), False))
                if len(out) >= MAX_VALUES:
                    return out
    return out
