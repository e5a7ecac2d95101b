"""memscope._base.validate: one rule, a wrong type is a TypeError and a bad value a ValueError."""

from __future__ import annotations

import math

import pytest

from memscope._base.validate import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_number,
    check_str,
)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: check_int("top", "3", low=1), TypeError, "top must be an int, got str"),
        (lambda: check_int("top", True, low=1), TypeError, "top must be an int, got bool"),
        (lambda: check_int("top", 0, low=1), ValueError, "top must be an int >= 1, got 0"),
        (lambda: check_int("top", 9, low=1, high=5), ValueError, "between 1 and 5, got 9"),
        (lambda: check_int("n", None), TypeError, "n must be an int, got NoneType"),
        (lambda: check_number("ttl", "1", low=0), TypeError, "ttl must be a finite number"),
        (lambda: check_number("ttl", math.nan, low=0), ValueError, "got nan"),
        (lambda: check_number("ttl", math.inf), ValueError, "got inf"),
        (lambda: check_number("ttl", 0, low=0, low_open=True), ValueError, "> 0, got 0"),
        (lambda: check_bool("trim", 1), TypeError, "trim must be True or False, got int"),
        (lambda: check_callable("on_evict", 3), TypeError, "on_evict must be callable, got int"),
        (lambda: check_str("name", 3), TypeError, "name must be a non-empty str, got int"),
        (lambda: check_str("name", ""), ValueError, "name must be a non-empty str"),
        (lambda: check_choice("mode", "x", ("a", "b")), ValueError, "one of 'a', 'b', got 'x'"),
        (lambda: check_choice("mode", [], ("a",)), ValueError, "one of 'a', got"),
    ],
)
def test_the_one_rule(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        call()  # type: ignore[operator]
    assert type(info.value) is error


def test_good_values_pass_through() -> None:
    assert check_int("n", 5, low=1, high=5) == 5
    assert check_int("n", None, optional=True) is None
    assert check_number("t", 2, low=0) == 2.0 and isinstance(check_number("t", 2), float)
    assert check_number("t", None, optional=True) is None
    assert check_bool("b", False) is False
    assert check_callable("f", None, optional=True) is None
    assert check_str("s", "x") == "x"
    assert check_choice("m", "a", ("a", "b")) == "a"
