"""Query parameters, checked: a bad one is a 422 that names it and what it accepts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .._base.units import clip

__all__ = ["MAX_QUERY_BYTES", "Param", "ParamError", "parse_query"]

MAX_QUERY_BYTES = 2048  # no endpoint takes more than a few short parameters
_MAX_FIELDS = 16
_INT = re.compile(r"[+-]?[0-9]{1,12}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class ParamError(ValueError):
    """A query parameter that is missing, repeated, unknown or out of range."""

    def __init__(self, parameter: str, message: str, accepted: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.accepted = accepted

    def to_dict(self) -> dict[str, str]:
        """The 422 body."""
        return {"error": str(self), "parameter": self.parameter, "accepted": self.accepted}


@dataclass(frozen=True)
class Param:
    """One accepted parameter: ``kind`` int, float, bool or id; range for numbers."""

    kind: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    required: bool = False

    def accepted(self) -> str:
        """What the parameter accepts, in words."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "id":
            return "a snapshot id (a positive integer, from POST snapshot)"
        what = "an integer" if self.kind == "int" else "a number"
        return f"{what} from {self.low:g} to {self.high:g}"

    def convert(self, name: str, text: str) -> Any:
        """The parameter's value from its text, or a ParamError."""
        value = text.strip()
        if self.kind == "bool":
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise self._bad(name, text)
        if self.kind in ("int", "id"):
            if not _INT.fullmatch(value):
                raise self._bad(name, text)
            number: float = int(value)
            low, high = (1, 10**9) if self.kind == "id" else (self.low, self.high)
        else:
            if not _FLOAT.fullmatch(value):
                raise self._bad(name, text)
            number = float(value)
            low, high = self.low, self.high
        if not math.isfinite(number) or (low is not None and number < low):
            raise self._bad(name, text)
        if high is not None and number > high:
            raise self._bad(name, text)
        return number

    def _bad(self, name: str, text: str) -> ParamError:
        return ParamError(
            name, f"{name} must be {self.accepted()}, got {clip(repr(text), 40)}", self.accepted()
        )


def parse_query(query: bytes, spec: Mapping[str, Param]) -> dict[str, Any]:
    """The checked parameters of a raw query string (defaults filled in)."""
    accepted_names = ", ".join(spec) or "none"
    if len(query) > MAX_QUERY_BYTES:
        raise ParamError(
            "query",
            f"the query string is {len(query):,} bytes; at most {MAX_QUERY_BYTES:,} are accepted",
            f"at most {MAX_QUERY_BYTES} bytes of: {accepted_names}",
        )
    try:
        text = query.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise ParamError(
            "query",
            "the query string is not valid percent-encoded UTF-8 (or has too many fields)",
            f"name=value pairs of: {accepted_names}",
        ) from None
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name not in spec:
            raise ParamError(
                clip(name, 40) or "query",
                f"unknown parameter {clip(repr(name), 40)}; this endpoint accepts: "
                f"{accepted_names}",
                accepted_names,
            )
        if name in seen:
            raise ParamError(
                name, f"{name} is given more than once; give it once", spec[name].accepted()
            )
        seen[name] = value
    out: dict[str, Any] = {}
    for name, param in spec.items():
        if name in seen:
            out[name] = param.convert(name, seen[name])
        elif param.required:
            raise ParamError(name, f"{name} is required: {param.accepted()}", param.accepted())
        else:
            out[name] = param.default
    return out
