"""A third-party collector, as a plugin author would write one (used by the contract tests)."""

from __future__ import annotations

import os
from typing import Any

from memscope import Section


class OpenFilesSection(Section):
    """Open file descriptors of this process."""

    name = "open_files"

    def summary_lines(self, top: int = 10) -> list[str]:
        """One line."""
        return [f"{self['open_fds']} open file descriptors"]


class OpenFilesCollector:
    """Counts /proc/self/fd entries (Linux) or says it is unavailable."""

    name = "open_files"
    cost = "cheap"
    section_type = OpenFilesSection

    def available(self) -> str | None:
        return None if os.path.isdir("/proc/self/fd") else "needs /proc/self/fd"

    def collect(self) -> dict[str, Any]:
        return {"open_fds": len(os.listdir("/proc/self/fd"))}


class BrokenOnLoad:
    """An entry point target that raises when instantiated."""

    def __init__(self) -> None:
        raise RuntimeError("plugin misconfigured")
