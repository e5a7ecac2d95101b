"""Units and names: byte and value formatting, the unit a key's name carries, type names,
clipping, and parsing sizes like "512MiB" or "80%"."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

__all__ = [
    "clip",
    "format_bytes",
    "format_value",
    "parse_limit",
    "parse_size",
    "type_name",
    "unit_of",
]

# a key's last word that only qualifies the quantity before it: pause_seconds_total is seconds
_QUALIFIERS = ("_total", "_max", "_min", "_mean", "_peak", "_delta")


def unit_of(key: str) -> str:
    """The unit a key's name carries: ``rss_bytes`` bytes, ``pause_seconds_max`` seconds."""
    leaf = key.rsplit(".", 1)[-1].split("[", 1)[0]
    for suffix in _QUALIFIERS:
        if leaf.endswith(suffix):
            leaf = leaf[: -len(suffix)]
            break
    if leaf.endswith("bytes"):
        return "bytes"
    if leaf.endswith("seconds"):
        return "seconds"
    return "count"


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; signs are kept."""
    if isinstance(n, float) and not math.isfinite(n):
        return f"{n} B"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{sign}{int(n)} B" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n:.1f} TiB"


def format_value(value: float, unit: str, *, signed: bool = False) -> str:
    """Render a number in its unit for humans."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # an infinite delta of two huge numbers renders, it does not raise
    if unit == "bytes":
        text = format_bytes(value)
        return f"+{text}" if signed and value > 0 else text
    if unit == "seconds":
        return f"{value:+.4f} s" if signed else f"{value:.4f} s"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return f"{int(value):+,}" if signed else f"{int(value):,}"


def _text(value: object, default: str) -> str:
    return value if type(value) is str and value else default


# type's own C descriptors: a metaclass's __module__ or __qualname__ property is never run
_MODULE = type.__dict__["__module__"]
_QUALNAME = type.__dict__["__qualname__"]


def type_name(tp: type) -> str:
    """``module.qualname`` for a type (builtins without the module); never runs user code."""
    try:
        mod = _text(_MODULE.__get__(tp), "?")
        qual = _text(_QUALNAME.__get__(tp), "?")
    except Exception:  # not a type at all: name it by its own type
        return f"<{type(tp).__name__}>"
    return qual if mod == "builtins" else f"{mod}.{qual}"


def clip(text: object, limit: int, marker: str = "...") -> str:
    """``str(text)`` cut to at most ``limit`` characters, ending in ``marker`` when cut."""
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return s
    return s[: max(limit - len(marker), 0)] + marker


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*|%)\s*$")


def parse_size(name: str, text: str) -> int | float:
    """A size string as bytes (``"512MiB"`` -> 536870912) or, for ``"80%"``, a fraction (0.8)."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a size string like '512MiB' or '80%', got {text!r}")
    match = _SIZE_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit not in _UNITS and unit != "%"):
        raise ValueError(
            f"{name}={text!r} is not a size: use e.g. '512MiB', '2GB', '1.5GiB' or '80%'"
        )
    number = float(match.group(1))
    if unit == "%":
        return number / 100.0
    return int(number * _UNITS[unit])


def parse_limit(
    name: str, value: int | float | str | None, capacity: Callable[[], int | None]
) -> int | None:
    """A limit as bytes: int bytes, a float fraction in (0, 1] of ``capacity()``, or a string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(
            f"{name} must be bytes (int), a fraction (float) or a size string like '512MiB' "
            f"or '80%', got {type(value).__name__}"
        )
    if isinstance(value, str):
        value = parse_size(name, value)
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{name} must be > 0 bytes, got {value}")
        return value
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ValueError(
            f"{name}={value!r}: a float is a fraction of the memory limit and must be in "
            "(0, 1]; pass a number of bytes as an int (or a string like '512MiB')"
        )
    total = capacity()
    if not total:
        raise ValueError(
            f"{name}={value!r} is a fraction, but the memory capacity is unknown here; "
            "pass bytes, or capacity=<bytes>"
        )
    return max(1, int(total * value))
