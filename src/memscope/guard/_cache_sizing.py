"""What a BoundedCache entry costs: the default getsizeof and the per-entry overheads."""

from __future__ import annotations

import sys

from .._base.units import clip
from .summary import bare_name

__all__ = ["ENTRY_OVERHEAD_BYTES", "TTL_OVERHEAD_BYTES", "default_getsizeof", "short_repr"]

#: Bytes counted per entry on top of ``getsizeof(key, value)`` when bytes are accounted:
#: what the cache's own bookkeeping (ordered-dict slot and link, size record) spends per
#: entry on 64-bit CPython, measured with tracemalloc over 100k entries.
ENTRY_OVERHEAD_BYTES = 192
#: Added to ENTRY_OVERHEAD_BYTES when ``ttl`` is set (expiry record and its float).
TTL_OVERHEAD_BYTES = 128

_SCALARS = (int, float, str, bytes, bool, type(None), complex)


def default_getsizeof(key: object, value: object) -> int:
    """Shallow size of key and value, one level into builtin containers (see docs)."""
    return _estimate(key) + _estimate(value)


def _shallow(obj: object) -> int:
    size = sys.getsizeof(obj)
    if type(obj) in _SCALARS:
        return size
    # arrays, tensors and memoryviews report their buffer in ``nbytes``; getsizeof may not
    try:
        nbytes = getattr(obj, "nbytes", None)
    except Exception:
        return size
    return nbytes if type(nbytes) is int and nbytes > size else size


def _estimate(obj: object) -> int:
    size = _shallow(obj)
    if type(obj) in _SCALARS:
        return size
    if isinstance(obj, dict):
        return size + sum(_shallow(k) + _shallow(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return size + sum(_shallow(item) for item in obj)
    return size


def short_repr(obj: object, limit: int = 80) -> str:
    """A key's repr bounded to ``limit`` characters, for error messages and logs."""
    # units.clip bounds str(); a key is named by its repr, and a broken __repr__ must not
    # turn an error message about the key into a different error
    try:
        text = repr(obj)
    except Exception:
        text = f"<{bare_name(type(obj))}>"
    return clip(text, limit)
