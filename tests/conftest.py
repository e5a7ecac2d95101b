"""Shared test helpers."""

from __future__ import annotations

import faulthandler
import gc
import os
from collections.abc import Iterator
from typing import IO

import pytest

_fault_log: IO[str] | None = None


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, so this one wins
def pytest_configure(config: pytest.Config) -> None:
    """With MEMSCOPE_FAULT_LOG set, a crash dumps every thread's stack into that file."""
    global _fault_log
    path = os.environ.get("MEMSCOPE_FAULT_LOG")
    if path and _fault_log is None:
        _fault_log = open(path, "w")  # noqa: SIM115 - open for the whole run, on purpose
        faulthandler.enable(file=_fault_log, all_threads=True)


@pytest.fixture
def collected() -> Iterator[None]:
    """Run a full collection before and after the test, so heap counts are stable."""
    gc.collect()
    yield
    gc.collect()
