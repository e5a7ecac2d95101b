"""Exceptions memscope raises on purpose."""

from __future__ import annotations

from typing import Any


class MemoryGrowthError(AssertionError):
    """Code under test grew memory on every measured round; ``report`` holds the evidence."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report
