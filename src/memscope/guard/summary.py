"""summarize(): a short description of any object for logs and exception messages.

``f"bad payload: {payload!r}"`` on a 50 MiB buffer builds a 50-200 MiB string, and
log handlers, error trackers and ``last_errors`` deques then keep it. ``summarize``
says what the object is (type, length, total bytes) and shows a head and a tail,
in at most ``max_chars`` characters, at a cost that does not depend on the object's
size: only a bounded number of items and characters is ever looked at.
"""

from __future__ import annotations

import contextlib
import sys
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from .._base.units import clip, format_bytes, type_name
from .._base.validate import check_int

MIN_CHARS = 40  # below this there is no room for a type, a length and a preview
SIZE_SAMPLE = 32  # items measured to estimate a container's total bytes
_ELLIPSIS = "…"
# type's own C descriptor: a metaclass's __name__ property is never run
_NAME = type.__dict__["__name__"]
# types whose repr is short and cheap whatever their value (huge ints are handled apart)
_SCALARS = (bool, float, complex, type(None))


def summarize(obj: object, max_chars: int = 200) -> str:
    """Type, length, total bytes and a head/tail preview of ``obj``, at most ``max_chars`` long."""
    check_int("max_chars", max_chars, low=MIN_CHARS)
    try:
        text = _summarize(obj, max_chars)
    except Exception as exc:  # a summary is for an error path: it must never raise itself
        text = f"{_type_name(obj)} (summary failed: {bare_name(type(exc))})"
    return _clip(text, max_chars)


def bare_name(tp: type) -> str:
    """A type's ``__name__`` read through type itself, so a metaclass's property never runs.

    For error messages about a user's object (or an exception its code raised): ``type(x).__name__``
    runs the metaclass's code, which may raise inside the very handler reporting an error.
    """
    try:
        name = _NAME.__get__(tp)
    except Exception:  # not a type
        return "?"
    return name if type(name) is str and name else "?"


def _summarize(obj: Any, max_chars: int) -> str:
    # dispatch on type(obj): isinstance() would also read obj.__class__, the object's code
    tp = type(obj)
    if issubclass(tp, _SCALARS):
        return repr(obj)
    if issubclass(tp, int):
        return _int_text(obj, max_chars)
    if issubclass(tp, (str, bytes, bytearray, memoryview)):
        return _buffer_summary(obj, max_chars)
    if issubclass(tp, (list, tuple, deque)):
        return _sequence_summary(obj, max_chars)
    if issubclass(tp, Mapping):
        return _mapping_summary(obj, max_chars)
    if issubclass(tp, (set, frozenset)):
        return _set_summary(obj, max_chars)
    return _other_summary(obj, max_chars)


def _type_name(obj: object) -> str:
    # units.type_name, but deque and OrderedDict read as themselves: a summary is short
    return type_name(type(obj)).removeprefix("collections.")


def _clip(text: str, limit: int) -> str:
    return clip(text, limit, _ELLIPSIS)  # one character of marker: the budget is tight


def _int_text(value: int, limit: int) -> str:
    # str() of a huge int is quadratic (and refused past 4300 digits): describe it instead
    bits = value.bit_length()
    if bits <= 256:
        return repr(value)
    digits = int(bits * 0.30103) + 1
    return f"int (~{digits:,} digits)"


def _header(obj: object, length: int, size: int, estimated: bool) -> str:
    approx = "~" if estimated else ""
    return f"{_type_name(obj)} len={length:,} size={approx}{format_bytes(size)}"


def _buffer_summary(obj: str | bytes | bytearray | memoryview, max_chars: int) -> str:
    if isinstance(obj, memoryview):
        data: str | bytes | bytearray | memoryview = obj.cast("B") if obj.c_contiguous else obj
        size = obj.nbytes
        length = obj.nbytes if obj.c_contiguous else len(obj)
    else:
        data = obj
        size = sys.getsizeof(obj)
        length = len(obj)
    head = _header(obj, length, size, False)
    budget = max_chars - len(head) - 1
    if budget < 8:
        return head
    if length <= budget:
        # small enough that the whole value may fit; never more than budget items are rendered
        whole = _render_slice(data, 0, length)
        if len(whole) <= budget:
            return f"{head} {whole}"
    tail_budget = (budget - len(_ELLIPSIS)) // 3
    head_budget = budget - len(_ELLIPSIS) - tail_budget
    # one item renders as at least one character, so budget items is always enough text
    first = _render_slice(data, 0, min(length, head_budget))[:head_budget]
    last_text = _render_slice(data, max(length - tail_budget, 0), length)
    last = last_text[-tail_budget:] if len(last_text) > tail_budget else last_text
    return f"{head} {first}{_ELLIPSIS}{last}"


def _render_slice(data: str | bytes | bytearray | memoryview, start: int, stop: int) -> str:
    part = data[start:stop]
    if isinstance(part, memoryview):
        return repr(part.tobytes())
    if isinstance(part, bytearray):
        return repr(bytes(part))
    return repr(part)


def _item_brief(item: object, budget: int) -> str:
    """A few characters for one element of a container: never a full large repr."""
    try:
        return _item_text(item, budget)
    except Exception:  # one element's own code failing leaves the rest of the summary
        return f"<{_type_name(item)}>"


def _item_text(item: object, budget: int) -> str:
    tp = type(item)  # not isinstance(): it would read item.__class__
    if issubclass(tp, _SCALARS):
        return _clip(repr(item), budget)
    if issubclass(tp, int):
        return _clip(_int_text(cast(int, item), budget), budget)
    if issubclass(tp, (str, bytes, bytearray)):
        buffer = cast("str | bytes | bytearray", item)
        if len(buffer) <= budget:
            text = repr(bytes(cast(bytearray, buffer)) if issubclass(tp, bytearray) else buffer)
            if len(text) <= budget:
                return text
        return f"<{_type_name(item)} len={len(buffer):,}>"
    try:
        length = len(item)  # type: ignore[arg-type]
    except Exception:
        return f"<{_type_name(item)}>"
    return f"<{_type_name(item)} len={length:,}>"


def _container_size(obj: Any, items: list[Any], length: int, pairs: bool) -> tuple[int, bool]:
    getsizeof = sys.getsizeof
    total = getsizeof(obj)
    if not items:
        return total, False
    if pairs:
        part = sum(getsizeof(k) + getsizeof(v) for k, v in items)
    else:
        part = sum(getsizeof(x) for x in items)
    if len(items) >= length:
        return total + part, False
    return total + part * length // len(items), True


def _join_items(
    head: str, head_items: list[str], tail_items: list[str], length: int, brackets: str, limit: int
) -> str:
    opening, closing = brackets[0], brackets[1]
    shown = len(head_items) + len(tail_items)
    if shown >= length:
        body = ", ".join(head_items + tail_items)
    else:
        body = ", ".join([*head_items, _ELLIPSIS, *tail_items])
    text = f"{head} {opening}{body}{closing}"
    if len(text) <= limit:
        return text
    # drop items from the middle until it fits, keeping the first and last in view
    while head_items or tail_items:
        if len(head_items) > len(tail_items):
            head_items = head_items[:-1]
        else:
            tail_items = tail_items[1:]
        body = ", ".join([*head_items, _ELLIPSIS, *tail_items])
        text = f"{head} {opening}{body}{closing}"
        if len(text) <= limit:
            return text
    return head


def _preview_counts(length: int) -> tuple[int, int]:
    if length <= 6:
        return length, 0
    return 4, 2


def _sequence_summary(obj: list[Any] | tuple[Any, ...] | deque[Any], max_chars: int) -> str:
    length = len(obj)
    n_head, n_tail = _preview_counts(length)
    if isinstance(obj, deque):
        # deque ends are O(1); slicing a deque is not supported
        head_vals = [obj[i] for i in range(min(n_head, length))]
        tail_vals = [obj[i] for i in range(length - n_tail, length)] if n_tail else []
        sample = [obj[i] for i in range(min(SIZE_SAMPLE, length))]
    else:
        head_vals = list(obj[:n_head])
        tail_vals = list(obj[length - n_tail :]) if n_tail else []
        sample = list(obj[:SIZE_SAMPLE])
    size, estimated = _container_size(obj, sample, length, pairs=False)
    head = _header(obj, length, size, estimated)
    per_item = max(12, (max_chars - len(head)) // max(1, n_head + n_tail + 1) - 2)
    brackets = "()" if isinstance(obj, tuple) else "[]"
    return _join_items(
        head,
        [_item_brief(v, per_item) for v in head_vals],
        [_item_brief(v, per_item) for v in tail_vals],
        length,
        brackets,
        max_chars,
    )


def _mapping_summary(obj: Mapping[Any, Any], max_chars: int) -> str:
    length = len(obj)
    n_head, n_tail = _preview_counts(length)
    head_pairs: list[tuple[Any, Any]] = []
    sample: list[tuple[Any, Any]] = []
    for i, key in enumerate(obj):
        if i >= max(n_head, SIZE_SAMPLE):
            break
        pair = (key, obj[key])
        sample.append(pair)
        if i < n_head:
            head_pairs.append(pair)
    tail_pairs: list[tuple[Any, Any]] = []
    if n_tail and isinstance(obj, dict):
        rev = reversed(obj)
        for _ in range(n_tail):
            key = next(rev)
            tail_pairs.insert(0, (key, obj[key]))
    size, estimated = _container_size(obj, sample, length, pairs=True)
    head = _header(obj, length, size, estimated)
    per_item = max(8, ((max_chars - len(head)) // max(1, n_head + n_tail + 1) - 4) // 2)
    render = [f"{_item_brief(k, per_item)}: {_item_brief(v, per_item)}" for k, v in head_pairs]
    render_tail = [f"{_item_brief(k, per_item)}: {_item_brief(v, per_item)}" for k, v in tail_pairs]
    if n_tail and not tail_pairs:
        # a Mapping that cannot iterate backwards: show only the head
        return _join_items(head, render, [], length, "{}", max_chars)
    return _join_items(head, render, render_tail, length, "{}", max_chars)


def _set_summary(obj: set[Any] | frozenset[Any], max_chars: int) -> str:
    length = len(obj)
    sample: list[Any] = []
    for item in obj:
        if len(sample) >= SIZE_SAMPLE:
            break
        sample.append(item)
    size, estimated = _container_size(obj, sample, length, pairs=False)
    head = _header(obj, length, size, estimated)
    n_show = min(length, 6)
    per_item = max(12, (max_chars - len(head)) // max(1, n_show + 1) - 2)
    return _join_items(
        head, [_item_brief(v, per_item) for v in sample[:n_show]], [], length, "{}", max_chars
    )


def _other_summary(obj: object, max_chars: int) -> str:
    name = _type_name(obj)
    parts = [name]
    try:
        length: int | None = len(obj)  # type: ignore[arg-type]
    except Exception:
        length = None
    if length is not None:
        parts.append(f"len={length:,}")
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int) and not isinstance(nbytes, bool):
        parts.append(f"size={format_bytes(nbytes)}")
    else:
        with contextlib.suppress(TypeError):
            parts.append(f"size={format_bytes(sys.getsizeof(obj))}")
    head = " ".join(parts)
    budget = max_chars - len(head) - 1
    if budget < 8:
        return head
    if type(obj).__repr__ is object.__repr__:
        return head
    # third-party reprs (numpy, pandas) bound themselves; the text is clipped here anyway
    try:
        text = repr(obj)
    except Exception as exc:
        return f"{head} (repr failed: {bare_name(type(exc))})"
    text = " ".join(text.split())
    return f"{head} {_clip(text, budget)}"
