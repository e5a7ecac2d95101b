"""A deep snapshot runs no user code: objects with Python-level __class__, __len__, __iter__,
__getattribute__ or __getitem__ are counted, listed and described by their real type."""

from __future__ import annotations

import gc
from typing import Any

import memscope

CALLS: list[str] = []


class Lazy:
    """Like Django's SimpleLazyObject: reading __class__ would run a factory."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        CALLS.append("Lazy.__class__")
        raise RuntimeError("settings are not configured")


class SneakyDict(dict):  # type: ignore[type-arg]
    def __len__(self) -> int:
        CALLS.append("SneakyDict.__len__")
        raise RuntimeError("len")

    def __iter__(self) -> Any:
        CALLS.append("SneakyDict.__iter__")
        raise RuntimeError("iter")

    def items(self) -> Any:
        CALLS.append("SneakyDict.items")
        raise RuntimeError("items")


class SneakyList(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        CALLS.append("SneakyList.__len__")
        return 0

    def __iter__(self) -> Any:
        CALLS.append("SneakyList.__iter__")
        return iter(())


class Guarded:
    """Every attribute read goes through user code."""

    def __init__(self, payload: object) -> None:
        object.__setattr__(self, "payload", payload)

    def __getattribute__(self, name: str) -> Any:
        CALLS.append(f"Guarded.{name}")
        return object.__getattribute__(self, name)


class BigText(str):
    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        CALLS.append("BigText.__getitem__")
        raise RuntimeError("getitem")


HOLD: list[object] = []


def test_deep_snapshot_runs_no_user_code() -> None:
    lazies = [Lazy() for _ in range(500)]
    sneaky = SneakyDict((f"k{i}", i) for i in range(20_000))
    listed = SneakyList(range(20_000))
    guarded = Guarded(list(range(30_000)))
    text = BigText("x" * (2 << 20))
    HOLD.extend([lazies, sneaky, listed, guarded, text])
    gc.collect()
    CALLS.clear()
    try:
        snap = memscope.snapshot(deep=True)
        assert CALLS == []
        assert snap.errors == {}
        by_type = {row["type"]: row["count"] for row in snap["census"]["by_type"]}
        assert by_type.get(f"{__name__}.Lazy") == 500  # counted like any other object
        rows = {row["type"]: row for row in snap["containers"]["top"]}
        # listed by their real length (the base type's), whatever their __len__ says
        assert rows[f"{__name__}.SneakyDict"]["length"] == 20_000
        assert rows[f"{__name__}.SneakyList"]["length"] == 20_000
        large = [row["type"] for row in snap["large_objects"]["objects"]]
        assert f"{__name__}.BigText" in large
        # and a compare() and a report of it run none either
        str(snap)
        str(memscope.compare(snap, snap))
        assert CALLS == []
    finally:
        HOLD.clear()


class DeepSizeof:
    def __sizeof__(self) -> int:
        CALLS.append("DeepSizeof.__sizeof__")
        return 10**9


def test_a_python_sizeof_is_not_called_and_not_trusted() -> None:
    keep = [DeepSizeof() for _ in range(100)]
    gc.collect()
    CALLS.clear()
    snap = memscope.snapshot(deep=True)
    assert CALLS == []
    assert CALLS == [] and "census" in snap
    # (the section lists the top types only; the whole tally says how it was sized)
    from memscope.collectors._heap import count_types

    count, size = count_types()[DeepSizeof]
    assert CALLS == []
    assert count == 100
    assert size < 100 * 1024  # its own layout, not the 100 GB it claims
    del keep
