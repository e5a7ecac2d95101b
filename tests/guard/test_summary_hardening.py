"""summarize() never raises, whatever a type's metaclass does when its names are read."""

from __future__ import annotations

from typing import Any

import pytest

from memscope.guard._cache_sizing import short_repr
from memscope.guard.summary import bare_name, summarize


def _hostile() -> dict[str, Any]:
    """Types whose names raise when read through attribute access (user code a summary must not
    run). Made in a function: pytest itself reads the names of a module's classes."""

    class Hostile(type):
        @property
        def __module__(cls) -> str:  # type: ignore[override]
            raise RuntimeError("__module__ read")

        @property
        def __name__(cls) -> str:  # type: ignore[override]
            raise RuntimeError("__name__ read")

    class HostileError(Exception, metaclass=Hostile):
        pass

    class Plain(metaclass=Hostile):
        pass

    class BadRepr:
        def __repr__(self) -> str:
            raise HostileError("no repr")

    class BadClass:
        """isinstance() reads __class__ when the type check fails; it raises here."""

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            raise HostileError("no class")

    class BadLen(list, metaclass=Hostile):  # type: ignore[type-arg]
        def __len__(self) -> int:
            raise HostileError("no len")

    class Key(metaclass=Hostile):
        def __repr__(self) -> str:
            raise HostileError("no repr")

    return {
        "Plain": Plain,
        "BadRepr": BadRepr,
        "BadClass": BadClass,
        "BadLen": BadLen,
        "Key": Key,
        "HostileError": HostileError,
    }


H = _hostile()


def _summary(obj: Any, max_chars: int = 200) -> str:
    try:
        return summarize(obj, max_chars=max_chars)
    except BaseException as exc:  # pytest cannot report a hostile exception: name it here
        name = type.__dict__["__name__"].__get__(type(exc))
        raise AssertionError(f"summarize() raised {name}") from None


# made per test and looked up by name: pytest reads __class__ of parametrize values
CASES: dict[str, Any] = {
    "instance": lambda: H["Plain"](),
    "the class": lambda: H["Plain"],
    "repr raises a hostile error": lambda: H["BadRepr"](),
    "__class__ raises a hostile error": lambda: H["BadClass"](),
    "len raises a hostile error": lambda: H["BadLen"]([1, 2]),
    "in a list": lambda: [H["Plain"](), H["BadRepr"](), H["BadClass"](), H["BadLen"]()],
    "in a dict": lambda: {1: H["BadRepr"](), 2: H["Plain"], 3: H["BadClass"]()},
    "in a set": lambda: {H["Plain"](), H["BadClass"]()},
}


@pytest.mark.parametrize("case", list(CASES))
def test_summarize_never_raises_on_hostile_names(case: str) -> None:
    text = _summary(CASES[case](), max_chars=120)
    assert isinstance(text, str) and 0 < len(text) <= 120
    assert "summary failed" not in text or case.endswith("hostile error")


def test_hostile_types_are_named_and_their_elements_contained() -> None:
    assert _summary(H["Plain"]()).startswith(f"{__name__}._hostile.<locals>.Plain")
    assert "(repr failed: HostileError)" in _summary(H["BadRepr"]())
    # one hostile element leaves the rest of the preview
    text = _summary([1, H["BadClass"](), 3])
    assert text.startswith("list len=3") and "BadClass" in text and text.endswith("3]")
    assert bare_name(H["HostileError"]) == "HostileError"
    assert bare_name(5) == "?"  # type: ignore[arg-type]


def test_short_repr_of_a_key_with_a_hostile_type() -> None:
    assert short_repr(H["Key"]()) == "<Key>"
