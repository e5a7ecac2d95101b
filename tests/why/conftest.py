"""Real modules, registered in sys.modules for a test and removed after it."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def make_module() -> Iterator[Callable[[str], types.ModuleType]]:
    made: list[str] = []

    def make(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        sys.modules[name] = module
        made.append(name)
        return module

    yield make
    for name in made:
        sys.modules.pop(name, None)
