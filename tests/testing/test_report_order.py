"""The no-growth report leads with what a reader searches for (issue 15 item 6)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import memscope
from memscope.testing import assert_no_growth
from memscope.testing._verdict import type_tier


def test_type_tiers() -> None:
    assert type_tier("httpx.Client") < type_tier("logging.FileHandler")
    assert type_tier("logging.FileHandler") < type_tier("_thread.lock") < type_tier("dict")


def test_a_handler_per_call_leads_its_locks_and_files(tmp_path: Path) -> None:
    # a FileHandler per call drags in locks, files and weakrefs that outnumber it: the
    # one-line summary used to name five of those and not the handler
    handlers: list[logging.Handler] = []
    locks: list[object] = []
    logger = logging.getLogger("memscope-test-audit")
    count = [0]

    def handle() -> None:
        count[0] += 1
        handler = logging.FileHandler(tmp_path / f"audit-{count[0]}.log")
        logger.addHandler(handler)
        handlers.append(handler)
        locks.extend(threading.Lock() for _ in range(5))

    try:
        with pytest.raises(memscope.MemoryGrowthError) as info:
            assert_no_growth(handle, warmup=2, rounds=5)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
    text = str(info.value)
    lines = text.splitlines()
    assert len(lines) <= 40, text
    summary = next(line for line in lines if "type(s) grew" in line)
    assert "logging.FileHandler" in summary, summary
    types = [r.type for r in info.value.report.grew]
    assert types.index("logging.FileHandler") < types.index("_thread.lock")
    # resources come before the types, and the first site is this file's own line
    assert text.index("open file descriptors") < text.index("types that grew")
    sites = text[text.index("top allocation sites") :].splitlines()
    assert "test_report_order.py" in sites[1], sites[:3]


def test_fds_that_grow_net_are_a_leak_though_some_rounds_fall() -> None:
    # the newcomer's case with real sockets: a client kept per call, while a server-side
    # pool closes idle keep-alive connections now and then, so some rounds read negative
    import socket

    idle = [socket.socketpair() for _ in range(60)]
    kept: list[tuple[socket.socket, socket.socket]] = []
    calls = [0]

    def request() -> None:
        calls[0] += 1
        kept.append(socket.socketpair())
        if calls[0] % 3 == 0:  # two idle pairs closed: this round reads -2
            for pair in (idle.pop(), idle.pop()):
                for sock in pair:
                    sock.close()

    try:
        with pytest.raises(memscope.MemoryGrowthError) as info:
            assert_no_growth(request, warmup=2, rounds=6)
    finally:
        for pair in kept + idle:
            for sock in pair:
                sock.close()
    report = info.value.report
    fds = report.deltas["fds"]
    assert any(d < 0 for d in fds) and sum(fds) > 0, fds
    assert any("file descriptors" in reason for reason in report.failures), report.failures
    assert "net +" in str(info.value)
