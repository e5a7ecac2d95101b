"""Bounded label values: at most ``max_names`` distinct names a family, the rest "other"."""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["LABEL_MAX_CHARS", "OTHER", "LabelBudget"]

OTHER = "other"
LABEL_MAX_CHARS = 120  # a name longer than this is clipped: label values stay small


def clip_label(value: str) -> str:
    """``value`` cut to :data:`LABEL_MAX_CHARS` (with an ellipsis when cut)."""
    return value if len(value) <= LABEL_MAX_CHARS else value[: LABEL_MAX_CHARS - 3] + "..."


class LabelBudget:
    """Gives names their own label value while slots last; the rest share ``"other"``.

    A name keeps its slot while it is present, so series do not flip between scrapes;
    free slots go to the largest newcomers. ``sticky=True`` never frees a slot (for
    multiprocess files, which keep every label value they ever saw). Thread-safe.
    """

    def __init__(self, max_names: int, *, sticky: bool = False) -> None:
        self.max_names = max_names
        self.sticky = sticky
        self._slots: set[str] = set()
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        """A fresh lock, for a forked child (a thread of the parent may have held it)."""
        self._lock = threading.Lock()

    def assign(self, weighted: Iterable[tuple[str, float]]) -> dict[str, str]:
        """name -> its label value (itself, clipped, or ``"other"``) for the present names."""
        present: dict[str, float] = {}
        for name, weight in weighted:
            present[name] = present.get(name, 0.0) + weight
        with self._lock:
            if not self.sticky:
                self._slots &= present.keys()
            free = self.max_names - len(self._slots)
            if free > 0:
                newcomers = sorted(
                    (n for n in present if n not in self._slots and n != OTHER),
                    key=lambda n: (-present[n], n),
                )
                self._slots.update(newcomers[:free])
            slots = set(self._slots)
        return {n: clip_label(n) if n in slots else OTHER for n in present}
