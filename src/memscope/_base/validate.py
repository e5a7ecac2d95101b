"""Argument checks with one rule everywhere: a wrong type is a TypeError, a value out of range
a ValueError, and both name the argument and what it accepts."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

__all__ = [
    "check_bool",
    "check_callable",
    "check_choice",
    "check_int",
    "check_number",
    "check_str",
]


def _or_none(accepted: str, optional: bool) -> str:
    return f"{accepted} or None" if optional else accepted


def check_int(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    optional: bool = False,
    unit: str = "",
) -> Any:
    """``value`` if it is an int in [low, high] (None too when ``optional``)."""
    what = f"an int{f' ({unit})' if unit else ''}"
    return _check_numeric(name, value, (int,), what, low, high, False, optional)


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    optional: bool = False,
    unit: str = "",
) -> Any:
    """``value`` as a float if it is a finite number in range (``low_open``: strictly above low)."""
    what = f"a finite number{f' of {unit}' if unit else ''}"
    found = _check_numeric(name, value, (int, float), what, low, high, low_open, optional)
    return None if found is None else float(found)


def _check_numeric(
    name: str,
    value: object,
    types: tuple[type, ...],
    what: str,
    low: float | None,
    high: float | None,
    low_open: bool,
    optional: bool,
) -> Any:
    if value is None and optional:
        return None
    # bool is an int to Python, but True passed as a size is always a mistake
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError(f"{name} must be {_or_none(what, optional)}, got {type(value).__name__}")
    number: float = value  # type: ignore[assignment]
    too_low = low is not None and (number <= low if low_open else number < low)
    if not math.isfinite(number) or too_low or (high is not None and number > high):
        raise ValueError(
            f"{name} must be {what} {_range(low, high, low_open=low_open)}, got {value!r}"
        )
    return value


def _range(low: float | None, high: float | None, *, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}" if not low_open else f"> {low} and <= {high}"
    if low is not None:
        return f"> {low}" if low_open else f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool (1 and 0 are refused: they hide mistakes)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return value


def check_callable(name: str, value: object, *, optional: bool = False) -> Any:
    """``value`` if it is callable (None too when ``optional``)."""
    if value is None and optional:
        return None
    if not callable(value):
        accepted = _or_none("callable", optional)
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    return value


def check_str(name: str, value: object, *, optional: bool = False) -> Any:
    """``value`` if it is a non-empty str (None too when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        accepted = _or_none("a non-empty str", optional)
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty str, got ''")
    return value


def check_choice(name: str, value: object, choices: Collection[object]) -> Any:
    """``value`` if it is one of ``choices`` (a ValueError listing them otherwise)."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable value cannot be one of them
        ok = False
    if not ok:
        accepted = ", ".join(map(repr, choices))
        raise ValueError(f"{name} must be one of {accepted}, got {value!r}")
    return value
