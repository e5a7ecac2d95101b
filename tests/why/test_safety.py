"""explain() runs no user code, keeps nothing alive, and draws real graphs."""

from __future__ import annotations

import gc
import types
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

import memscope

CALLS: list[str] = []


class Hostile:
    """Every hook a careless walk would call records the call and raises."""

    def __repr__(self) -> str:
        CALLS.append("repr")
        raise RuntimeError("repr")

    def __eq__(self, other: object) -> bool:
        CALLS.append("eq")
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        CALLS.append("hash")
        raise RuntimeError("hash")

    def __sizeof__(self) -> int:
        CALLS.append("sizeof")
        raise RuntimeError("sizeof")

    def __getattr__(self, name: str) -> object:
        CALLS.append(f"getattr {name}")
        raise RuntimeError(name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        CALLS.append("__class__")
        raise RuntimeError("__class__")


def test_no_user_code_runs(make_module: Callable[[str], types.ModuleType]) -> None:
    app = make_module("app_hostile")
    key = Hostile.__new__(Hostile)
    value = Hostile.__new__(Hostile)
    value.__dict__["payload"] = [Hostile.__new__(Hostile)]
    app.table = dict.fromkeys([1], value)
    app.holder = Hostile.__new__(Hostile)
    app.holder.__dict__["inner"] = value
    app.keyed = {}
    dict.__setitem__(app.keyed, 1, key)
    CALLS.clear()
    e = memscope.explain(value, path=None)
    assert CALLS == []
    assert str(e).splitlines()[0] == "module app_hostile attribute table -> dict[1] -> Hostile"
    assert "module app_hostile attribute holder -> Hostile.inner -> Hostile" in str(e)
    assert e.retained_bytes > 0
    assert memscope.explain(Hostile).instances >= 3
    assert CALLS == []


def test_holds_nothing_after_returning(
    make_module: Callable[[str], types.ModuleType], tmp_path: Path
) -> None:
    class Model:
        pass

    app = make_module("app_weak")
    app.registry = {"m": Model()}
    probe = weakref.ref(app.registry["m"])
    e = memscope.explain(app.registry["m"], path=tmp_path / "why.dot")
    by_type = memscope.explain(Model)
    assert e.chains and by_type.chains
    del app.registry["m"]
    gc.collect()
    assert probe() is None


def test_leaves_no_garbage_for_the_collector(
    make_module: Callable[[str], types.ModuleType],
) -> None:
    # what explain() made is freed by reference counts when it returns: nothing of it waits
    # in a cycle for a collection (find_leaks after explain would list memscope's objects)
    class Model:
        pass

    app = make_module("app_no_garbage")
    app.registry = {"m": [Model() for _ in range(5)]}
    gc.collect()
    flags = gc.get_debug()
    gc.disable()
    try:
        for target in (app.registry["m"][0], Model):
            assert memscope.explain(target).chains
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = [type(o).__qualname__ for o in gc.garbage]
            gc.set_debug(flags)
            gc.garbage.clear()
            assert left == []
    finally:
        gc.set_debug(flags)
        gc.enable()


def test_a_parent_link_back_into_the_path_ends_it() -> None:
    from memscope.why._chains import _path

    a, b, c = object(), object(), object()
    keep = {id(a): a, id(b): b, id(c): c}
    # c's parent is b, b's is a, a's is b again: the path stops where it would loop
    assert _path(id(c), {id(c): id(b), id(b): id(a), id(a): id(b)}, keep) == [c, b, a]


def test_png_svg_and_dot_render(
    make_module: Callable[[str], types.ModuleType], tmp_path: Path
) -> None:
    app = make_module("app_graph")
    app.registry = {"a": [object()]}
    target = app.registry["a"][0]
    png = memscope.explain(target, path=tmp_path / "why.png")
    data = (tmp_path / "why.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 50 and height > 100
    assert png.path == str(tmp_path / "why.png")
    memscope.explain(target, path=str(tmp_path / "why.svg"))
    svg = (tmp_path / "why.svg").read_text()
    assert "<svg" in svg and "module app_graph" in svg
    dot = memscope.explain(target, path=tmp_path / "why.dot")
    text = (tmp_path / "why.dot").read_text()
    assert text == dot.dot and text.startswith("digraph why {")
    assert "[label=\"['a']\"]" in text and '[label="[0]"]' in text


def test_png_without_graphviz_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH with no `dot` on it
    with pytest.raises(RuntimeError, match="install graphviz"):
        memscope.explain(object(), path=tmp_path / "why.png")
    assert not (tmp_path / "why.png").exists()
    e = memscope.explain(object(), path=tmp_path / "why.dot")
    assert (tmp_path / "why.dot").read_text() == e.dot
