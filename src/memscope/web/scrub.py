"""Keeping object contents out of responses unless the app was built with expose_reprs=True.

Heap scans describe containers with samples of their items (``summary``) and say where
an object is held in words that can quote a dict key (``dict key 'sess-4f2a...'``).
Either can be a secret, so by default summaries are dropped and quoted literals in
the remaining text are replaced by a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

__all__ = ["REDACTED", "scrub"]

REDACTED = "<redacted>"
# object contents under these keys, whatever section they are in
_CONTENT_KEYS = frozenset({"summary", "repr", "reprs", "value"})
# a Python str or bytes literal as safe_repr prints one: 'x', "x", b'x' (escapes included)
_LITERAL = re.compile(r"[bB]?'(?:[^'\\]|\\.)*'" + r'|[bB]?"(?:[^"\\]|\\.)*"')
_MAX_DEPTH = 12


def scrub(data: Any, keep: Collection[str] = (), _depth: int = 0) -> Any:
    """A copy of JSON-like ``data`` with object contents removed (see the module docstring).

    Quoted literals whose text is in ``keep`` (the app's own snapshot labels) stay.
    """
    if _depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(data, dict):
        return {
            key: (
                REDACTED
                if key in _CONTENT_KEYS and data[key] is not None
                else scrub(value, keep, _depth + 1)
            )
            for key, value in data.items()
        }
    if isinstance(data, (list, tuple)):
        return [scrub(item, keep, _depth + 1) for item in data]
    if isinstance(data, str) and ("'" in data or '"' in data):
        return _LITERAL.sub(lambda m: m[0] if m[0][1:-1] in keep else REDACTED, data)
    return data
