"""memscope's pytest plugin (entry point ``pytest11``): fixtures and the no-growth check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def memscope_snapshot() -> Callable[..., Any]:
    """Take memscope snapshots inside a test: ``snap = memscope_snapshot(label="x")``."""
    import memscope

    return memscope.snapshot
