"""Holder paths reach a named root: modules, classes, loggers, cache wrappers, closures."""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memscope.collectors._holder_paths import holder_paths
from memscope.guard import BoundedCache

HERE = __name__


class Quote:
    """An lru_cache on a method: the cache holds every instance it was called on."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    @functools.lru_cache(maxsize=None)  # noqa: B019, UP033 (the shape under test)
    def price(self) -> float:
        return 1.0


class Bus:
    """A class-level list of listeners."""

    listeners: list[object] = []


class Service:
    def __init__(self) -> None:
        self.sessions: dict[str, bytes] = {}

    def handler(self) -> int:
        return len(self.sessions)


service = Service()
registry: dict[str, dict[str, list[int]]] = {"acme": {"exports": []}}
callbacks: list[Callable[..., Any]] = []


def _make_closure() -> Callable[[], int]:
    seen: dict[int, int] = {i: i for i in range(100)}

    def count() -> int:
        return len(seen)

    return count


def paths(*targets: object) -> list[dict[str, str | None] | None]:
    found = holder_paths(list(targets))
    return [found.get(id(t)) for t in targets]


def test_module_instance_and_nested_dict_keys() -> None:
    service.sessions.update((f"s{i}", b"x") for i in range(100))
    registry["acme"]["exports"].extend(range(100))
    got = paths(service.sessions, registry["acme"]["exports"])
    assert got[0] is not None and got[0]["path"] == f"{HERE}.service.sessions"
    assert got[0]["owner"] == f"{HERE}.Service"
    assert got[0]["where"] == (
        f"instance of {HERE}.Service attribute sessions <- module {HERE} attribute service"
    )
    assert got[1] is not None and got[1]["path"] == f"{HERE}.registry['acme']['exports']"


def test_a_cache_wrapper_is_named_by_the_function_it_wraps() -> None:
    keep = [Quote(f"Q{i}") for i in range(50)]
    for q in keep:
        q.price()
    wrapper = Quote.__dict__["price"]
    storage = next(r for r in gc.get_referents(wrapper) if type(r) is dict and len(r) >= 50)
    got = paths(storage)[0]
    assert got is not None and got["path"] == f"functools.lru_cache of {HERE}.Quote.price"
    Quote.price.cache_clear()
    del keep, storage


def test_logger_handlers_class_lists_and_bounded_caches() -> None:
    log = logging.getLogger("memscope-test-audit")
    handler = logging.NullHandler()
    log.addHandler(handler)
    Bus.listeners.extend(range(10))
    cache: BoundedCache[int, int] = BoundedCache(maxsize=100, name="models")
    for i in range(50):
        cache[i] = i
    data = next(r for r in gc.get_referents(cache) if type(r) is dict or hasattr(r, "keys"))
    try:
        got = paths(log.handlers, Bus.listeners, data)
        assert got[0] is not None and got[0]["path"] == "logger 'memscope-test-audit' handlers"
        assert got[1] is not None and got[1]["path"] == f"{HERE}.Bus.listeners"
        assert got[2] is not None and got[2]["path"].startswith("BoundedCache 'models'")
    finally:
        log.removeHandler(handler)
        Bus.listeners.clear()


def test_closures_bound_methods_and_partials_say_their_function() -> None:
    count = _make_closure()
    cell = count.__closure__[0].cell_contents  # type: ignore[index]
    callbacks.append(count)
    bound_target = service
    callbacks.append(service.handler)
    part_arg: list[int] = list(range(300))
    callbacks.append(functools.partial(sorted, part_arg))
    try:
        got = paths(cell, part_arg)
        closure = got[0]
        assert closure is not None
        assert f"closure of {HERE}._make_closure.<locals>.count (seen)" in str(closure["path"])
        assert str(closure["path"]).startswith(f"{HERE}.callbacks[0]")
        assert got[1] is not None and "functools.partial" in str(got[1]["path"])
    finally:
        callbacks.clear()
    del bound_target


def test_paths_are_found_within_the_budget_or_left_out() -> None:
    deep: Any = {"leaf": list(range(10))}
    leaf = deep["leaf"]
    for _ in range(30):  # deeper than the walk climbs
        deep = {"next": deep}
    holder_of_deep = [deep]
    assert paths(leaf)[0] is None or "next" in str(paths(leaf)[0])
    found = holder_paths([leaf], budget_seconds=0.0)
    assert found == {}  # no time at all: nothing, and no error
    del holder_of_deep


@pytest.fixture
def fake_proc(tmp_path: Path) -> Iterator[Path]:
    fd = tmp_path / "proc" / "4242" / "fd"
    fd.mkdir(parents=True)
    links = {
        "0": "/dev/null",
        "1": "socket:[1001]",
        "2": "socket:[1002]",
        "3": "pipe:[77]",
        "4": "anon_inode:[eventfd]",
        "5": "anon_inode:[timerfd]",
        "6": "/srv/app/data.db",
        "7": "/var/log/app.log",
    }
    for name, target in links.items():
        os.symlink(target, fd / name)
    yield tmp_path


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_fds_by_kind_from_a_fake_proc_tree(fake_proc: Path) -> None:
    from memscope._base.proc import fds_by_kind

    assert fds_by_kind(4242, root=str(fake_proc)) == {
        "files": 2,
        "sockets": 2,
        "pipes": 1,
        "eventfds": 1,
        "anon_inodes": 1,
        "other": 1,
    }
    assert fds_by_kind(999_999, root=str(fake_proc)) is None  # no such process: unavailable
