"""memscope.track(): weak, bounded, shows in every snapshot, clear_caches()."""

from __future__ import annotations

import gc
from collections import OrderedDict
from typing import Any

import pytest

import memscope
from memscope._base import tracking as tracked_mod

MODULE_CACHE: dict[str, int] = {}


class Cache(dict[str, Any]):
    """A dict subclass: weak-referenceable, so it is tracked without an owner."""


def _rows() -> dict[str, dict[str, Any]]:
    snap = memscope.snapshot(collectors=["tracked"])
    return {r["name"]: r for r in snap["tracked"]["objects"]}


def test_tracked_object_shows_name_type_len_size() -> None:
    cache = memscope.track(Cache((f"k{i}", i) for i in range(500)), name="t_models")
    row = _rows()["t_models"]
    assert row["len"] == 500
    assert row["type"].endswith("Cache")
    assert row["size_bytes"] > 500 * 28
    assert row["clearable"] is False
    del cache


def test_dead_objects_disappear_and_nothing_is_kept_alive() -> None:
    cache = memscope.track(OrderedDict(a=1), name="t_dies")
    assert "t_dies" in _rows()
    del cache
    gc.collect()
    assert "t_dies" not in _rows()
    assert all(name != "t_dies" for name, _, _ in tracked_mod.tracked_objects())


def test_plain_dict_found_as_module_global_or_owner() -> None:
    memscope.track(MODULE_CACHE, name="t_module_cache", clear=True)
    MODULE_CACHE.update(a=1, b=2)
    assert _rows()["t_module_cache"]["len"] == 2

    class Service:
        def __init__(self) -> None:
            self.sessions: dict[str, int] = {"x": 1}
            memscope.track(self.sessions, name="t_sessions")  # owner found as self

    svc = Service()
    assert _rows()["t_sessions"]["len"] == 1
    del svc
    gc.collect()
    assert "t_sessions" not in _rows()  # dropped with its owner: no leak
    memscope.untrack(MODULE_CACHE)


def test_plain_dict_without_owner_is_a_clear_error() -> None:
    def make() -> None:
        local: dict[str, int] = {}
        memscope.track(local, name="t_local")

    with pytest.raises(TypeError, match=r"cannot be weakly referenced.*owner="):
        make()


def test_explicit_owner_tracks_it_exactly_as_long_as_the_owner_holds_it() -> None:
    class Owner:
        pass

    owner = Owner()
    owner.items = [1, 2, 3]  # type: ignore[attr-defined]
    memscope.track(owner.items, name="t_owned", owner=owner)  # type: ignore[attr-defined]
    assert _rows()["t_owned"]["len"] == 3
    del owner
    gc.collect()
    assert "t_owned" not in _rows()
    # an owner that does not hold it would leave memscope holding it: refused
    with pytest.raises(TypeError, match="owner does not hold this list"):
        memscope.track([1], name="t_loose", owner=Owner())


def test_clear_caches_clears_only_clearable() -> None:
    a = memscope.track(Cache(x=1, y=2), name="t_clear_a", clear=True)
    b = memscope.track(Cache(z=3), name="t_keep_b")
    cleared = memscope.clear_caches()
    assert cleared["t_clear_a"] == 2
    assert "t_keep_b" not in cleared
    assert len(a) == 0 and len(b) == 1


def test_stats_protocol_and_bad_input() -> None:
    class Guarded:
        def __len__(self) -> int:
            return 7

        def memscope_stats(self) -> dict[str, Any]:
            return {"size_bytes": 4096, "hits": 3, "skipme": object()}

    g = memscope.track(Guarded(), name="t_guarded")
    row = _rows()["t_guarded"]
    assert row["size_bytes"] == 4096 and row["size_estimated"] is False
    assert row["stats"] == {"hits": 3}
    with pytest.raises(TypeError, match="clear=True needs an object with a clear"):
        memscope.track(Guarded(), name="x", clear=True)
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        memscope.track(Cache(), name="")
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        memscope.track(Cache(), name=3)  # type: ignore[arg-type]
    del g


def test_registry_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracked_mod, "MAX_ENTRIES", 5)
    keep = [memscope.track(Cache(), name=f"t_bound_{i}") for i in range(20)]
    with tracked_mod._lock:
        assert len(tracked_mod._entries) <= 5
    assert tracked_mod.dropped_total >= 15
    del keep


def test_large_container_size_is_estimated_cheaply() -> None:
    big = memscope.track(Cache((str(i), i) for i in range(100_000)), name="t_big")
    row = _rows()["t_big"]
    assert row["size_estimated"] is True
    assert 0.5 < row["size_bytes"] / (100_000 * (28 + 50)) < 3
    del big


def test_replaced_container_is_not_kept_alive() -> None:
    class Service:
        def reset(self) -> None:
            self.items: dict[str, int] = {"x": 1}
            memscope.track(self.items, name="t_items", owner=self)

    def held_by_memscope(obj: object) -> bool:
        # the getter holds no container at all now; nothing of memscope's refers to it
        return any(type(r).__module__.startswith("memscope") for r in gc.get_referrers(obj))

    svc = Service()
    svc.reset()
    first = svc.items
    svc.reset()  # a new dict under the same owner and name replaces the entry
    assert not held_by_memscope(first)
    assert [name for name in _rows() if name.startswith("t_items")] == ["t_items"]
    second = svc.items
    svc.items = {"y": 2}  # replaced without re-tracking: the old one is let go at next look
    assert "t_items" not in _rows()
    assert not held_by_memscope(second)


def test_retracking_adds_no_finalizer() -> None:
    import weakref

    cache = Cache()
    memscope.track(cache, name="t_re")
    before = len(weakref.finalize._registry)  # type: ignore[attr-defined]
    for _ in range(100):
        memscope.track(cache, name="t_re")
    assert len(weakref.finalize._registry) - before == 0  # type: ignore[attr-defined]
    del cache


class Payload:
    """Weakly referenceable, so a test can see when the container holding it is freed."""


def test_tracking_never_keeps_a_replaced_container_alive() -> None:
    import weakref

    class Service:
        def __init__(self) -> None:
            payload = Payload()
            self.ref = weakref.ref(payload)
            self.items: dict[str, object] = {"p": payload}
            memscope.track(self.items, name="t_life_items")  # owner found as self
            inner = Payload()
            self.inner_ref = weakref.ref(inner)
            self.caches: dict[str, dict[str, object]] = {"users": {"p": inner}}
            memscope.track(self.caches["users"], name="t_life_users", owner=self)

    svc = Service()
    assert {"t_life_items", "t_life_users"} <= set(_rows())
    svc.items = {}  # rebound: the old dict and what it holds must go now, not at a snapshot
    svc.caches["users"] = {}
    gc.collect()
    assert svc.ref() is None
    assert svc.inner_ref() is None
    rows = _rows()
    assert "t_life_items" not in rows and "t_life_users" not in rows  # no stale lengths


def test_track_after_fork_while_another_thread_tracks() -> None:
    import os
    import threading
    import time
    import warnings

    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            for _ in range(50):
                memscope.untrack(memscope.track(Cache(), name="t_fork_busy"))

    threads = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    hung = 0
    try:
        for _ in range(20):
            with warnings.catch_warnings():
                # 3.12+ warns that forking a threaded process is risky: the subject here
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                try:
                    memscope.track(Cache(), name="t_fork_child")
                finally:
                    os._exit(0)
            deadline = time.monotonic() + 5.0
            while True:
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    hung += 1
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.005)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert hung == 0
