"""Shared test helpers."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def collected() -> Iterator[None]:
    """Run a full collection before and after the test, so heap counts are stable."""
    gc.collect()
    yield
    gc.collect()
