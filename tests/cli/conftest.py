"""Fixtures of the CLI tests: a runner of ``python -m memscope`` and a real recording."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import memscope

Run = Callable[..., subprocess.CompletedProcess[str]]


class Leak:
    """The planted growth: one small object holding 1000 bytes."""

    __slots__ = ("pad",)

    def __init__(self) -> None:
        self.pad = bytes(1000)


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # generous timeout: two cores, shared with other work
    return subprocess.run(
        [sys.executable, "-m", "memscope", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run() -> Run:
    """Run ``python -m memscope ARGS`` in a subprocess, output captured as text."""
    return _run


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .jsonl a real Monitor recorded: 6 snapshots (#2, #4, #6 deep), a list growing between,
    and a child process alive meanwhile (so children RSS is recorded too)."""
    path = tmp_path_factory.mktemp("rec") / "rec.jsonl"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        monitor = memscope.Monitor(interval=60, deep_every=2, record=path, label="rec")
        keep: list[Leak] = []
        for _ in range(6):
            keep.extend(Leak() for _ in range(5000))  # ~5 MB a step
            monitor.take()
        del keep
    finally:
        child.kill()
        child.wait(timeout=60)
    return path
