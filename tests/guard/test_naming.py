"""Every guard object registers at construction, named or not; unnamed ones are named where
the user's code made them, the same in every process that runs that code."""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import memscope
from memscope._base.tracking import tracked_objects
from memscope.guard import (
    AsyncKeyedLocks,
    BoundedCache,
    KeyedLocks,
    MemoryGuard,
    SSEBuffer,
    TaskTracker,
)

# a user's module: guard objects made at module level, in a method, in a function, by a
# subclass, by the decorator and by iter_sse, each on its own line
APP = """
import asyncio

from memscope.guard import (
    AsyncKeyedLocks, BoundedCache, KeyedLocks, MemoryGuard, SSEBuffer, TaskTracker,
    bounded_cache, iter_sse,
)

_cache = BoundedCache(4)
other_cache = BoundedCache(8)
locks = KeyedLocks()
alocks = AsyncKeyedLocks()
buffer = SSEBuffer()
guard = MemoryGuard(soft_limit=1 << 40, usage=lambda: 0)
kept = []
kept.append(BoundedCache(2))


class Service:
    def __init__(self):
        self.cache = BoundedCache(2)


class ModelCache(BoundedCache):
    def __init__(self):
        super().__init__(16)


models = ModelCache()
service = Service()


def build():
    local = BoundedCache(3)
    return local


built = build()


@bounded_cache(maxsize=2)
def load(key):
    return key


def stream():
    events = iter_sse([b"data: x\\n\\n"])
    first = next(events)
    return events, first


streamed = stream()


async def _make_tracker():
    made = TaskTracker()
    return made


tracker = asyncio.run(_make_tracker())
"""

KINDS = (
    "_cache",
    "other_cache",
    "locks",
    "alocks",
    "buffer",
    "guard",
    "models",
    "built",
    "tracker",
)


def _names_of(module: ModuleType) -> dict[str, str]:
    """Tracked name of each object the module made, found by identity in the registry."""
    by_id = {id(obj): name for name, obj, _ in tracked_objects()}
    objects: dict[str, Any] = {attr: getattr(module, attr) for attr in KINDS}
    objects["kept[0]"] = module.kept[0]
    objects["service.cache"] = module.service.cache
    objects["load.cache"] = module.load.cache
    objects["streamed.buffer"] = module.streamed[0].gi_frame.f_locals["buf"]
    return {label: by_id.get(id(obj), "<not tracked>") for label, obj in objects.items()}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    (tmp_path / "shop_app.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("shop_app")
    try:
        yield module
    finally:
        sys.modules.pop("shop_app", None)


def test_unnamed_objects_are_named_after_where_they_were_made(
    collected: None, app: ModuleType
) -> None:
    kept_line = APP.splitlines().index("kept.append(BoundedCache(2))") + 1
    next_line = APP.splitlines().index("    first = next(events)") + 1
    assert _names_of(app) == {
        "_cache": "shop_app._cache",
        "other_cache": "shop_app.other_cache",
        "locks": "shop_app.locks",
        "alocks": "shop_app.alocks",
        "buffer": "shop_app.buffer",
        "guard": "shop_app.guard",
        # a subclass's super().__init__() is not the place: the line that made it is
        "models": "shop_app.models",
        "built": "shop_app.build.local",
        "tracker": "shop_app._make_tracker.made",
        "kept[0]": f"BoundedCache@shop_app:{kept_line}",
        "service.cache": "shop_app.Service.cache",
        "load.cache": "shop_app.load",
        # iter_sse makes the buffer: named after the user's line that drives it, not after
        # that line's assignment (which holds an event, not the buffer)
        "streamed.buffer": f"SSEBuffer@shop_app:{next_line}",
    }


def test_the_tracked_section_shows_distinct_rows(collected: None, app: ModuleType) -> None:
    # `collected` first: an earlier test's copy of the module may still wait for the gc
    section = memscope.snapshot(collectors=["tracked"])["tracked"]
    rows = {row["name"] for row in section["objects"]}
    assert {"shop_app._cache", "shop_app.other_cache", "shop_app.Service.cache"} <= rows
    # no "BoundedCache#2": two caches from two lines never share a name
    assert not [name for name in rows if name.startswith("shop_app") and "#" in name]


def test_the_same_code_gets_the_same_names_in_two_processes(tmp_path: Path) -> None:
    (tmp_path / "shop_app.py").write_text(APP)
    code = textwrap.dedent(
        """
        import json, memscope, shop_app
        rows = memscope.snapshot(collectors=["tracked"])["tracked"]["objects"]
        print(json.dumps(sorted(r["name"] for r in rows if "shop_app" in r["name"])))
        """
    )

    def names() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        assert out.returncode == 0, out.stderr
        result: list[str] = json.loads(out.stdout)
        return result

    first, second = names(), names()
    assert first == second
    assert "shop_app._cache" in first and "shop_app.Service.cache" in first
    assert len(first) == len(set(first)), "every object has a name of its own"


def _make_all(name: str | None) -> list[object]:
    async def tracker() -> TaskTracker:
        return TaskTracker(name=None if name is None else f"{name}-tracker")

    def named(kind: str) -> str | None:
        return None if name is None else f"{name}-{kind}"

    return [
        BoundedCache(4, name=named("cache")),
        SSEBuffer(name=named("sse")),
        KeyedLocks(name=named("locks")),
        AsyncKeyedLocks(name=named("alocks")),
        MemoryGuard(soft_limit=1 << 40, usage=lambda: 0, name=named("guard")),
        asyncio.run(tracker()),
    ]


@pytest.mark.parametrize("name", [None, "reg"])
def test_every_kind_registers_at_construction(name: str | None, collected: None) -> None:
    objects = _make_all(name)
    tracked = {id(obj): row_name for row_name, obj, _ in tracked_objects()}
    for obj in objects:
        assert id(obj) in tracked, f"{type(obj).__name__} did not register"
    rows = {
        row["name"]: row for row in memscope.snapshot(collectors=["tracked"])["tracked"]["objects"]
    }
    for obj in objects:
        row = rows[tracked[id(obj)]]
        assert row["type"].endswith(type(obj).__name__)
    if name is not None:
        assert sorted(tracked[id(obj)] for obj in objects) == sorted(
            [
                "reg-cache",
                "reg-sse",
                "reg-locks",
                "reg-alocks",
                "memory_guard.reg-guard",
                "reg-tracker",
            ]
        )
    else:
        # unnamed, inside _make_all: the BoundedCache(...) line is not an assignment
        assert all(__name__ in tracked[id(obj)] for obj in objects)
    ids = [id(obj) for obj in objects]
    del objects, obj
    gc.collect()
    assert not set(ids) & {id(o) for _, o, _ in tracked_objects()}, "held weakly"
