"""memscope._base.loop: the background loop Monitor and MemoryGuard share (real threads)."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings

import pytest

from memscope._base.loop import BackgroundLoop

log = logging.getLogger("test.loop")


def wait_for(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


def test_runs_until_stopped_and_survives_failing_steps() -> None:
    calls = []

    def step() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")

    loop = BackgroundLoop(step, interval=0.001, name="t-loop", logger=log)
    assert loop.start() is True
    assert loop.start() is False  # already running: no second thread
    wait_for(lambda: len(calls) >= 5)
    assert loop.errors_total == 1  # the failure was counted and the loop went on
    assert loop.stop(2.0) is True
    assert not loop.running
    n = len(calls)
    time.sleep(0.02)
    assert len(calls) == n
    assert not [t for t in threading.enumerate() if t.name == "t-loop"]


def test_start_after_a_stop_that_timed_out_starts_a_new_thread() -> None:
    gate = threading.Event()
    calls = []

    def step() -> None:
        calls.append(threading.current_thread().ident)
        gate.wait(5)

    loop = BackgroundLoop(step, interval=0.001, name="t-slow", logger=log)
    loop.start()
    wait_for(lambda: calls)
    assert loop.stop(0.01) is False  # the step still holds its thread
    assert not loop.running  # stopping is not running
    assert loop.start() is True
    gate.set()
    wait_for(lambda: len(set(calls)) == 2)
    assert loop.stop(2.0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_stopped_and_can_start_again() -> None:
    reset = []
    loop = BackgroundLoop(
        lambda: None, interval=0.001, name="t-fork", logger=log, after_fork=lambda: reset.append(1)
    )
    loop.start()
    r, w = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns that forking a threaded process is risky: that risk is the subject here
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        try:
            ok = (not loop.running) and reset == [1] and loop.start() and loop.stop(2.0)
            os.write(w, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 10)
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert loop.running  # the parent's loop is untouched
    assert loop.stop(2.0)
