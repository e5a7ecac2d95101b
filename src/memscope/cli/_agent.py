"""The agent ``memscope attach`` runs inside a target process (its source is exec'd there).

Importing this module does nothing. In the target, a small bootstrap reads this file from
the attach's private directory and runs it in a daemon thread named ``memscope-attach``;
:func:`run` then reads the request, borrows this install of memscope (its directory put on
``sys.path`` for the duration), takes the snapshot or serves one shell session, writes the
answer into the directory (0600 files) and gives everything back: memscope's modules leave
``sys.modules``, the paths leave ``sys.path``, memscope's gc callback leaves
``gc.callbacks``, and its after-fork hooks are never registered. What stays is listed in
the answer (``footprint``) and in docs/cli.md.

Only the standard library is used at module level: the target may have nothing else.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

REQUEST = "request.json"  # what the CLI asks: written by the CLI before the injection
STARTED = "started"  # written by the agent as soon as it runs (a timed-out attach says so)
RESULT = "result.json"  # the answer: {"ok": true, ...} or {"ok": false, "error": ...}
BUFFER = "buffer"  # the address of the bootstrap's C string, when the agent must free it


def _write(directory: str, name: str, data: bytes) -> None:
    """Write ``name`` in ``directory`` atomically, readable by its owner only."""
    tmp = os.path.join(directory, name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, os.path.join(directory, name))


def _memscope_owned(name: str, module: object, roots: tuple[str, ...]) -> bool:
    """Whether a module is memscope's or came from one of the borrowed directories."""
    if name == "memscope" or name.startswith("memscope."):
        return True
    where = getattr(module, "__file__", None)
    return isinstance(where, str) and where.startswith(roots)


@contextmanager
def borrowed(paths: list[str], extra: list[str]) -> Iterator[dict[str, Any]]:
    """memscope importable for the duration; on exit what it added is taken back.

    Yields the footprint dict, filled on exit: stdlib modules that were imported and stay
    (taking them out could split a module the program imports meanwhile).
    """
    footprint: dict[str, Any] = {"modules_left": []}
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    callbacks_before = list(gc.callbacks)
    already = "memscope" in sys.modules
    real_register = getattr(os, "register_at_fork", None)

    def register_at_fork(**hooks: Callable[[], object]) -> None:
        # memscope's modules reset their locks after a fork; CPython cannot unregister a
        # hook, and each attach imports memscope afresh, so they would pile up
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if isinstance(caller, str) and (caller == "memscope" or caller.startswith("memscope.")):
            return
        assert real_register is not None
        real_register(**hooks)

    sys.path[:0] = [p for p in paths if p not in sys.path]
    sys.path.extend(p for p in extra if p not in sys.path)
    if real_register is not None and not already:
        setattr(os, "register_at_fork", register_at_fork)  # noqa: B010 - typed narrower
    try:
        yield footprint
    finally:
        if real_register is not None and not already:
            setattr(os, "register_at_fork", real_register)  # noqa: B010
        added = [p for p in sys.path if p not in path_before]
        for p in added:
            while p in sys.path:
                sys.path.remove(p)
        roots = tuple(os.path.join(p, "") for p in (*paths, *extra))
        for name in sorted(set(sys.modules) - modules_before):
            module = sys.modules.get(name)
            if not already and _memscope_owned(name, module, roots):
                sys.modules.pop(name, None)
            else:
                footprint["modules_left"].append(name)
        if not already:
            gc.callbacks[:] = [cb for cb in gc.callbacks if cb in callbacks_before]
        footprint["sys_path_restored"] = sys.path == path_before


def _free_buffer(directory: str) -> None:
    """Free the bootstrap's C string if the injector left its address (the pending-call path)."""
    try:
        with open(os.path.join(directory, BUFFER)) as fh:
            address = int(fh.read().strip(), 16)
    except (OSError, ValueError):
        return
    import ctypes

    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    libc.free(ctypes.c_void_p(address))


def _snapshot(request: dict[str, Any]) -> dict[str, Any]:
    import memscope

    snap = memscope.snapshot(
        label=str(request.get("label") or "attach"), deep=bool(request["deep"])
    )
    return {"snapshot": snap.to_dict()}


def _explain(request: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    import memscope

    found = memscope.explain(str(request["explain"]), timeout=float(request["explain_timeout"]))
    to_dict = getattr(found, "to_dict", None)
    data = to_dict() if callable(to_dict) else dataclasses.asdict(found)
    return {"explanation": {"text": str(found), "report": found.report(), "data": data}}


def run(directory: str) -> None:
    """Answer the request in ``directory``; never raises (this runs inside someone's program)."""
    try:
        with open(os.path.join(directory, REQUEST), "rb") as fh:
            request = json.loads(fh.read())
    except (OSError, ValueError):
        return  # the CLI gave up and removed the directory: nobody to answer
    answer: dict[str, Any]
    try:
        _write(directory, STARTED, str(time.time()).encode())
        version = list(sys.version_info[:2])
        if sys.implementation.name != "cpython" or version != request["python"]:
            wanted = ".".join(map(str, request["python"]))
            have = ".".join(map(str, version))
            raise RuntimeError(
                f"the target runs {sys.implementation.name} {have}; memscope attach needs "
                f"CPython {wanted}, the Python the CLI runs on (run the CLI with that Python)"
            )
        started = time.perf_counter()
        with borrowed(request["paths"], request.get("extra_paths", [])) as footprint:
            if request["mode"] == "shell":
                from memscope.cli._agent_shell import serve

                body = serve(directory, request)
            elif request["mode"] == "explain":
                body = _explain(request)
            else:
                body = _snapshot(request)
        answer = {"ok": True, **body}
        answer["seconds"] = time.perf_counter() - started
        answer["footprint"] = footprint
    except BaseException as exc:  # nothing may escape into the host program
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        _free_buffer(directory)
    except Exception:  # a C string of a few hundred bytes is at stake
        answer.setdefault("footprint", {})["buffer_left"] = True
    # the directory is gone when the CLI timed out: nobody to answer
    with suppress(OSError, TypeError, ValueError):
        _write(directory, RESULT, json.dumps(answer).encode())


if __name__ == "__memscope_agent__":
    run(globals()["__memscope_dir__"])
