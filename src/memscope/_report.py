"""Plain-text rendering of snapshots for humans (no third-party imports)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._snapshot import Snapshot


def render_snapshot(snap: Snapshot, *, top: int = 10) -> str:
    """One block per section, in collector order, then errors."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.timestamp))
    label = f" {snap.label!r}" if snap.label else ""
    lines = [f"memscope snapshot{label} pid {snap.pid} at {when} ({snap.python})"]
    for name, section in snap.sections.items():
        lines.append(f"[{name}]")
        try:
            body = section.summary_lines(top=top)
        except Exception as exc:  # rendering must never break a report
            body = [f"(could not render: {type(exc).__name__}: {exc})"]
        lines.extend(f"  {line}" for line in body)
    for name, error in sorted(snap.errors.items()):
        lines.append(f"[{name}] {error}")
    return "\n".join(lines)
