"""The gdb side of ``memscope attach`` on CPython 3.10-3.13: run by gdb's Python, not by memscope.

gdb runs this file with ``-x`` after attaching (every thread of the target is stopped). It
reads the plan (a JSON file named by ``MEMSCOPE_GDB_PLAN``), checks the target is CPython of
the expected version, picks a safe place for the bootstrap and detaches. It prints
``MEMSCOPE <word> <text>`` lines the CLI reads.

The bootstrap (a few lines of Python that start the agent thread) runs either

* ``ensure``: on a thread that has a Python thread state, does not hold the GIL and is not
  inside malloc (typically the main thread sleeping or blocked in a system call), between
  ``PyGILState_Ensure`` and ``PyGILState_Release``: the thread takes the GIL the normal way;
* ``pending``: when the only Python thread holds the GIL (a busy loop), as a pending call
  (``Py_AddPendingCall``): the interpreter runs it at its next safe point, and gdb is gone
  by then.

Importing this module outside gdb does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

SYMBOLS = (
    "Py_GetVersion",
    "PyGILState_Ensure",
    "PyGILState_Release",
    "PyGILState_Check",
    "PyGILState_GetThisThreadState",
    "PyRun_SimpleString",
    "Py_AddPendingCall",
)
# a frame of these means the thread may hold a lock the bootstrap would need (malloc's
# arena lock, the dynamic loader's lock, the GIL's own mutex)
IN_MALLOC = ("malloc", "free", "calloc", "realloc", "memalign", "_int_", "_dl_")
# take_gil and drop_gil are static and usually inlined: a thread in the GIL's code shows
# as one of these with only C-library frames (a wait, a lock) above it
GIL_FUNCTIONS = (
    "take_gil",
    "drop_gil",
    "PyEval_RestoreThread",
    "PyEval_SaveThread",
    "PyEval_AcquireThread",
    "PyEval_ReleaseThread",
    "PyEval_AcquireLock",
    "PyEval_ReleaseLock",
    "PyGILState_Ensure",
    "PyGILState_Release",
    "_Py_HandlePending",
    "eval_frame_handle_pending",
    "_PyEval_EvalFrameDefault",
)
FRAMES_CHECKED = 24


def say(word: str, text: str = "") -> None:
    """One line for the CLI."""
    print(f"MEMSCOPE {word} {text}".rstrip(), flush=True)


def _frames(gdb: Any) -> list[str]:
    names: list[str] = []
    try:
        frame = gdb.newest_frame()
        while frame is not None and len(names) < FRAMES_CHECKED:
            names.append(frame.name() or "")
            frame = frame.older()
    except gdb.error:
        names.append("?")
    return names


def _libc(name: str) -> bool:
    """A C-library frame (a system call wrapper, a wait, a lock), or one without a name."""
    return (
        name in ("", "?", "??")
        or name.startswith(("__", "pthread_", "clock_", "futex", "sem_"))
        or "lll_" in name
    )


def in_gil_code(frames: list[str]) -> bool:
    """Whether the thread is inside the GIL's own code (waiting for it, taking, dropping)."""
    for name in frames:
        if not _libc(name):
            return name in GIL_FUNCTIONS and (
                name != "_PyEval_EvalFrameDefault" or name != frames[0]
            )
    return False


def _threads(gdb: Any, pid: int) -> list[dict[str, Any]]:
    """Each thread: main or not, Python or not, holding the GIL, in malloc, in the GIL's code."""
    found = []
    for thread in gdb.selected_inferior().threads():
        thread.switch()
        frames = _frames(gdb)
        # reading the thread state and the GIL's owner touches no lock: safe anywhere
        tstate = int(gdb.parse_and_eval("(long)PyGILState_GetThisThreadState()"))
        holds = tstate != 0 and int(gdb.parse_and_eval("(int)PyGILState_Check()")) == 1
        found.append(
            {
                "thread": thread,
                "main": thread.ptid[1] == pid,
                "python": tstate != 0,
                "holds": holds,
                "in_malloc": any(part in name for name in frames for part in IN_MALLOC),
                "gil": in_gil_code(frames),
            }
        )
    return found


def _choose(gdb: Any, pid: int) -> tuple[str, Any] | None:
    """('ensure', thread) or ('pending', thread), or None when no place is safe now.

    A thread waits for the GIL itself (``ensure``) only when no thread holds the GIL or
    waits for it: then it gets the GIL at once. gdb cannot safely stop waiting in the middle
    of a call (undoing a thread's wait inside the GIL's condition variable crashes the
    process later), so when any thread holds the GIL (the main thread busy, or a thread in
    C), the bootstrap is queued as a pending call instead: the main thread runs it at its
    next safe point, and gdb is gone by then.
    """
    threads = _threads(gdb, pid)
    busy = any(t["holds"] or t["gil"] for t in threads)
    if not busy:
        waiters = [t for t in threads if t["python"] and not t["in_malloc"]]
        waiters.sort(key=lambda t: not t["main"])  # the main thread first
        if waiters:
            waiters[0]["thread"].switch()
            return "ensure", waiters[0]["thread"]
    # the pending call needs a thread that may call malloc (a queue entry and the string)
    main = next((t for t in threads if t["main"] and t["python"]), None)
    if main is None:
        return None  # an embedded interpreter whose main thread is not Python's
    callers = [t for t in threads if not t["in_malloc"]]
    callers.sort(key=lambda t: not t["main"])
    if not callers:
        return None
    callers[0]["thread"].switch()
    return "pending", callers[0]["thread"]


def _buffer(gdb: Any, code: bytes) -> int:
    """A C string holding ``code`` in the target (malloc'ed there)."""
    address = int(gdb.parse_and_eval(f"(long)malloc({len(code) + 1})"))
    if address == 0:
        raise RuntimeError("malloc in the target returned NULL")
    gdb.selected_inferior().write_memory(address, code + b"\0")
    return address


def _cannot_restore(gdb: Any) -> str | None:
    """gdb's error if it cannot write the registers a call saves and restores, else None.

    gdb 13 on some kernels with AMX CPUs reads the extended state but cannot write it
    back: a call then leaves the thread with a syscall that was never restarted (a
    sleeping target dies of EINTR-like errors). One SSE register is written and put back
    first, while the thread is stopped, so such a gdb is refused before any call.
    """
    try:
        before = int(gdb.parse_and_eval("$xmm0.v4_int32[0]"))
    except gdb.error:
        return None  # no SSE registers (not x86-64): nothing of the kind to check
    try:
        gdb.execute(f"set var $xmm0.v4_int32[0] = {before ^ 1}", to_string=True)
    except gdb.error as exc:
        return str(exc)
    gdb.execute(f"set var $xmm0.v4_int32[0] = {before}", to_string=True)
    return None


def main(gdb: Any) -> None:
    """Run the plan inside gdb; every outcome is a MEMSCOPE line."""
    with open(os.environ["MEMSCOPE_GDB_PLAN"]) as fh:
        plan = json.load(fh)
    if gdb.selected_inferior().pid == 0:
        say("NOT-ATTACHED")  # gdb's own message (ptrace refused, no such process) says why
        return
    for command in (
        "set confirm off",
        "set pagination off",
        "set unwindonsignal on",
    ):
        gdb.execute(command, to_string=True)
    missing = []
    for name in SYMBOLS:
        try:
            gdb.parse_and_eval(f"(long)&{name}")
        except gdb.error:
            missing.append(name)
    if missing:
        say("NOT-CPYTHON", ", ".join(missing))
        return
    refused = _cannot_restore(gdb)
    if refused is not None:
        say("FAILED", refused.replace("\n", " "))
        return
    version = gdb.parse_and_eval("(char*)Py_GetVersion()").string()
    say("VERSION", version.split()[0] if version else "?")
    if not version.startswith(plan["version_prefix"]):
        return  # the CLI refuses, naming both versions
    choice = _choose(gdb, int(plan["pid"]))
    if choice is None:
        say("BUSY")
        return
    how, _thread = choice
    address = _buffer(gdb, plan["bootstrap"].encode())
    if how == "ensure":
        # the GIL is free and nobody waits for it: with only this thread running, no other
        # can take it first and keep it in C while gdb waits; the others run again for
        # the bootstrap (it starts a thread and waits until that thread runs)
        gdb.execute("set scheduler-locking on", to_string=True)
        try:
            state = int(gdb.parse_and_eval("(int)PyGILState_Ensure()"))
        finally:
            gdb.execute("set scheduler-locking off", to_string=True)
        status = int(gdb.parse_and_eval(f"(int)PyRun_SimpleString((char*){address})"))
        gdb.execute(f"call (void)PyGILState_Release({state})", to_string=True)
        gdb.execute(f"call (void)free((void*){address})", to_string=True)
        say("INJECTED", f"ensure {status}")
    else:
        # the agent frees the string once the bootstrap has run
        # O_EXCL | O_NOFOLLOW: gdb may run as root in a directory the target's user owns
        path = os.path.join(plan["directory"], "buffer")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(path, flags, 0o600), "w") as fh:
            fh.write(hex(address))
        status = int(
            gdb.parse_and_eval(
                f"(int)Py_AddPendingCall((int(*)(void*))PyRun_SimpleString, (void*){address})"
            )
        )
        say("INJECTED", f"pending {status}")


if __name__ == "__main__" and "MEMSCOPE_GDB_PLAN" in os.environ:
    import importlib

    _gdb: Any = importlib.import_module("gdb")  # there only inside gdb

    try:
        main(_gdb)
    except Exception as exc:  # the CLI turns this into its message
        say("FAILED", f"{type(exc).__name__}: {exc}".replace("\n", " "))
    finally:
        with contextlib.suppress(_gdb.error):
            _gdb.execute("detach", to_string=True)
