"""Guard objects' locks across a real os.fork(): a lock another thread holds at the fork must
not stay held in the child (that thread does not exist there)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from memscope.guard.cache import BoundedCache
from memscope.guard.keyed_locks import KeyedLocks
from memscope.guard.release import MemoryReleaser

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_SECONDS = 30.0  # generous: the machine is shared and busy


def fork_and_report(child: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``child`` in a forked child; its result comes back through a pipe as JSON."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process may deadlock: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(read_end)
            try:
                result = child()
            except BaseException as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(write_end, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_SECONDS
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail(f"the child hung for {CHILD_SECONDS} s (a lock stayed held)")
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, Any] = json.loads(data)
    return result


@contextmanager
def held_in_thread(hold: Callable[[threading.Event, threading.Event], object]) -> Iterator[None]:
    """``hold(entered, leave)`` runs in a thread that keeps a lock until ``leave`` is set."""
    entered, leave = threading.Event(), threading.Event()
    t = threading.Thread(target=hold, args=(entered, leave), daemon=True)
    t.start()
    try:
        assert entered.wait(CHILD_SECONDS)
        yield
    finally:
        leave.set()
        t.join(CHILD_SECONDS)


def test_release_memory_is_not_busy_forever_in_the_child() -> None:
    releaser_entered = threading.Event()
    releaser_leave = threading.Event()
    parent = os.getpid()

    def trim() -> tuple[Any, bool]:
        if os.getpid() == parent:  # the parent's pass stays inside, holding the lock
            releaser_entered.set()
            releaser_leave.wait(CHILD_SECONDS)
        return "none", False

    releaser = MemoryReleaser(trim=trim, rss=lambda: 1 << 20)

    def child() -> dict[str, Any]:
        report = releaser.release(collect=False, expire=False)
        return {"skipped": report.skipped, "reason": report.skip_reason}

    t = threading.Thread(
        target=releaser.release, kwargs={"collect": False, "expire": False}, daemon=True
    )
    t.start()
    try:
        assert releaser_entered.wait(CHILD_SECONDS)
        assert releaser.release(collect=False).skip_reason == "busy"  # held in the parent
        result = fork_and_report(child)
    finally:
        releaser_leave.set()
        t.join(CHILD_SECONDS)
    assert result == {"skipped": False, "reason": None}


def test_a_cache_locked_by_another_thread_works_in_the_child() -> None:
    parent = os.getpid()
    inside, leave = threading.Event(), threading.Event()

    def timer() -> float:  # runs under the cache's lock
        if os.getpid() == parent and threading.current_thread().name == "holder":
            inside.set()
            leave.wait(CHILD_SECONDS)
        return time.monotonic()

    cache: BoundedCache[str, int] = BoundedCache(8, ttl=600.0, timer=timer, name="fork-cache")
    cache["a"] = 1
    factory_in, factory_leave = threading.Event(), threading.Event()

    def slow_factory() -> int:
        factory_in.set()
        factory_leave.wait(CHILD_SECONDS)
        return 0

    def child() -> dict[str, Any]:
        cache["b"] = 2
        # a flight led by a thread that does not exist here must not be waited for
        value = cache.get_or_set("flying", lambda: 42)
        return {"b": cache["b"], "len": len(cache), "flying": value, "items": sorted(cache)}

    leader = threading.Thread(target=cache.get_or_set, args=("flying", slow_factory), daemon=True)
    leader.start()
    assert factory_in.wait(CHILD_SECONDS)
    holder = threading.Thread(target=cache.__setitem__, args=("c", 3), name="holder", daemon=True)
    holder.start()
    try:
        assert inside.wait(CHILD_SECONDS)
        result = fork_and_report(child)
    finally:
        leave.set()
        factory_leave.set()
        holder.join(CHILD_SECONDS)
        leader.join(CHILD_SECONDS)
    assert result == {"b": 2, "len": 3, "flying": 42, "items": ["a", "b", "flying"]}
    assert cache["c"] == 3 and cache["flying"] == 0  # the parent is untouched


def test_keyed_locks_held_by_another_thread_are_free_in_the_child() -> None:
    locks = KeyedLocks(name="fork-locks")

    def hold_key(entered: threading.Event, leave: threading.Event) -> None:
        with locks("k"):
            entered.set()
            leave.wait(CHILD_SECONDS)

    def hold_mutex(entered: threading.Event, leave: threading.Event) -> None:
        with locks._mutex:  # the table's own lock, held across the fork
            entered.set()
            leave.wait(CHILD_SECONDS)

    def child() -> dict[str, Any]:
        got = locks.acquire("k", timeout=5.0)
        if got:
            locks.release("k")
        with locks("other", timeout=5.0):
            pass
        return {"acquired": got, "keys": len(locks)}

    with held_in_thread(hold_key), held_in_thread(hold_mutex):
        result = fork_and_report(child)
    assert result == {"acquired": True, "keys": 0}
    assert len(locks) == 0
