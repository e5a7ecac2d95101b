"""memscope._base.units: formatting, units from key names, type names, sizes."""

from __future__ import annotations

import collections

import pytest

from memscope._base.units import (
    clip,
    format_bytes,
    format_value,
    parse_limit,
    parse_size,
    type_name,
    unit_of,
)


@pytest.mark.parametrize(
    ("key", "unit"),
    [
        ("rss_bytes", "bytes"),
        ("cgroup.usage_bytes", "bytes"),
        ("by_type[str].size_bytes", "bytes"),
        ("pause_seconds", "seconds"),
        ("pause_seconds_total", "seconds"),
        ("generations[0].pause_seconds_max", "seconds"),
        ("collections_total", "count"),
        ("sizeof_errors", "count"),
        ("size_estimated", "count"),
        ("objects_total", "count"),
        ("arena_bytes_peak", "bytes"),
    ],
)
def test_unit_comes_from_the_name(key: str, unit: str) -> None:
    assert unit_of(key) == unit


def test_formatting() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(-3 * 1024**3) == "-3.0 GiB"
    assert format_bytes(5 * 1024**4) == "5.0 TiB"
    assert format_value(2048, "bytes", signed=True) == "+2.0 KiB"
    assert format_value(0.5, "seconds", signed=True) == "+0.5000 s"
    assert format_value(1234, "count", signed=True) == "+1,234"
    assert format_value(1.25, "count") == "1.25"


def test_type_names() -> None:
    assert type_name(dict) == "dict"
    assert type_name(collections.OrderedDict) == "collections.OrderedDict"

    class Odd:
        pass

    Odd.__module__ = property(lambda self: "x")  # type: ignore[assignment]
    assert type_name(Odd).startswith("?.")  # a descriptor instead of a str is not trusted


def test_clip() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdefgh", 5) == "ab..."
    assert clip(None, 5) == ""
    assert clip("abcdefgh", 5, marker="…") == "abcd…"


@pytest.mark.parametrize(
    ("text", "value"),
    [("512MiB", 512 << 20), ("2GB", 2 * 10**9), ("1.5GiB", 3 << 29), ("100", 100), ("80%", 0.8)],
)
def test_parse_size(text: str, value: float) -> None:
    assert parse_size("limit", text) == value


def test_parse_limit_rules() -> None:
    assert parse_limit("soft_limit", None, lambda: None) is None
    assert parse_limit("soft_limit", "50%", lambda: 1000) == 500
    assert parse_limit("soft_limit", 0.25, lambda: 1000) == 250
    assert parse_limit("soft_limit", 4096, lambda: None) == 4096
    with pytest.raises(ValueError, match="soft_limit='12 parsecs' is not a size"):
        parse_limit("soft_limit", "12 parsecs", lambda: 1000)
    with pytest.raises(ValueError, match="must be in"):
        parse_limit("soft_limit", 1.5, lambda: 1000)
    with pytest.raises(ValueError, match="capacity is unknown"):
        parse_limit("soft_limit", 0.5, lambda: None)
    with pytest.raises(ValueError, match="must be > 0 bytes"):
        parse_limit("soft_limit", 0, lambda: None)
    with pytest.raises(TypeError, match="soft_limit must be bytes"):
        parse_limit("soft_limit", True, lambda: None)
    with pytest.raises(TypeError, match="soft_limit must be bytes"):
        parse_limit("soft_limit", [1], lambda: None)  # type: ignore[arg-type]


def test_type_names_run_no_metaclass_code() -> None:
    calls = []

    class Meta(type):
        @property
        def __module__(cls) -> str:  # type: ignore[override]
            calls.append("module")
            raise RuntimeError("module")

    class Shy(metaclass=Meta):
        pass

    assert type_name(Shy).endswith(".Shy")
    assert calls == []
    assert type_name(3) == "<int>"  # type: ignore[arg-type]
