"""importwatch: the cyclic garbage an import makes is found exactly, and nothing else."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memscope._base import importwatch

_MODULE = """
import dataclasses

@dataclasses.dataclass(slots=True)
class Slotted:  # the decorator drops the class it replaces: garbage in a cycle
    x: int = 0

loop = []
loop.append(loop)  # a cycle the module keeps: not garbage
gone = [[]]
gone[0].append(gone)
del gone  # a cycle nothing keeps: garbage
"""


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    importwatch.take_ids()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        importwatch.take_ids()


def test_the_garbage_an_import_leaves_is_what_a_collection_saves(module_dir: Path) -> None:
    (module_dir / "leaves_garbage.py").write_text(_MODULE)
    gc.collect()
    with importwatch.watch():
        mod = importlib.import_module("leaves_garbage")
    held = importwatch.take_ids()
    flags = gc.get_debug()
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    before = len(gc.garbage)
    try:
        gc.collect()
    finally:
        gc.set_debug(flags)
        saved = gc.garbage[before:]
        del gc.garbage[before:]
    saved_ids = {id(obj) for obj in saved}
    # every object the collection found is one the watch held, and the held are garbage:
    # the first Slotted class and the dropped lists are among them, what lives is not
    assert saved_ids and saved_ids <= held
    names = {getattr(obj, "__qualname__", None) for obj in saved if isinstance(obj, type)}
    assert "Slotted" in names
    assert sum(isinstance(obj, list) for obj in saved) == 2
    assert id(mod.loop) not in held and id(mod.Slotted) not in held and id(mod) not in held
    del saved
    assert gc.isenabled()


def test_the_collector_stays_as_it_was_and_errors_hold_nothing(module_dir: Path) -> None:
    gc.disable()
    try:
        with pytest.raises(ZeroDivisionError), importwatch.watch():
            junk: list[object] = []
            junk.append(junk)
            del junk
            raise ZeroDivisionError
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert importwatch.take_ids() == set()
    gc.collect()


def test_what_it_holds_is_bounded(module_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importwatch, "MAX_HELD", 10)
    with importwatch.watch():
        for _ in range(20):
            junk: list[object] = []
            junk.append(junk)
        del junk
    assert importwatch.take_ids() == set()  # 20 lists: over the bound, none held
    with importwatch.watch():
        junk = []
        junk.append(junk)
        del junk
    assert len(importwatch.take_ids()) == 1
    gc.collect()
