"""Running frames' locals, read without building f_locals dicts (issue 15 item 1)."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator

import pytest

from memscope.collectors import _frames

pytestmark = pytest.mark.skipif(
    _frames.needed() and not _frames.available(),
    reason="no fast-locals reader for this interpreter",
)


@pytest.fixture
def worker() -> Iterator[tuple[threading.Thread, threading.Event]]:
    """A thread whose running function holds a big string only in a local."""
    started, release = threading.Event(), threading.Event()

    def read_stream() -> None:
        buffer = "event-data;" * 50_000
        gone = [1]
        del gone
        started.set()
        release.wait(30)
        assert buffer  # keeps the local alive while waiting

    thread = threading.Thread(target=read_stream, name="sse-worker", daemon=True)
    thread.start()
    assert started.wait(10)
    yield thread, release
    release.set()
    thread.join(10)


def _hints_of_big_strings() -> list[str]:
    return [
        hint
        for value, hint in _frames.running_locals()
        if type(value) is str and len(value) >= 500_000
    ]


def test_a_threads_local_is_found_and_named(
    worker: tuple[threading.Thread, threading.Event],
) -> None:
    hints = _hints_of_big_strings()
    assert hints == [
        "local `buffer` of tests.collectors.test_frames.worker.<locals>.read_stream, "
        "thread 'sse-worker'"
    ] or hints == [
        # a module imported under its file name (pytest's importlib mode may do that)
        f"local `buffer` of {__name__}.worker.<locals>.read_stream, thread 'sse-worker'"
    ]


def test_deleted_and_unbound_locals_are_not_reported(
    worker: tuple[threading.Thread, threading.Event],
) -> None:
    names = {hint.split("`")[1] for _, hint in _frames.running_locals() if "read_stream" in hint}
    assert names == {"buffer", "started", "release"}  # `gone` was deleted


def test_the_callers_own_locals_are_found_and_memscopes_are_not() -> None:
    mine = "caller-held;" * 10_000
    found = [h for v, h in _frames.running_locals() if v is mine]
    assert len(found) == 1 and found[0].startswith("local `mine` of ")
    assert not any(h.split(" of ")[1].startswith("memscope.") for _, h in _frames.running_locals())


def test_reading_builds_no_locals_dict(worker: tuple[threading.Thread, threading.Event]) -> None:
    def dicts() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is dict)

    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # no other thread makes dicts between the two counts
    try:
        gc.collect()
        before = dicts()
        pairs = _frames.running_locals()
        del pairs
        after = dicts()
        # the check can fail: f_locals on 3.11/3.12 leaves a dict in the frame
        frame = sys._current_frames()[worker[0].ident]  # type: ignore[index]
        while frame.f_code.co_name != "read_stream":
            frame = frame.f_back  # type: ignore[assignment]
        if sys.version_info < (3, 13):
            frame.f_locals  # noqa: B018
            assert dicts() == after + 1
    finally:
        sys.setswitchinterval(old)
    assert after == before


def test_bounded(
    worker: tuple[threading.Thread, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_frames, "MAX_VALUES", 3)
    assert len(_frames.running_locals()) == 3
