"""BoundedCache hardening: iteration under concurrent lock-free hits, and a cache that stays
usable after a user's mistake (a key whose hash changes once stored, a timer that fails)."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from memscope.guard import cache as cache_mod
from memscope.guard.cache import BoundedCache


@dataclass(frozen=True)
class Point:
    """A key whose __hash__ and __eq__ are Python code (so the GIL can switch inside them)."""

    x: int
    y: str


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


def _keys(kind: str, n: int) -> list[Any]:
    if kind == "dataclass":
        return [Point(i, f"p{i}") for i in range(n)]
    return [(Colour.RED if i % 2 else Colour.BLUE, i) for i in range(n)]


@pytest.mark.parametrize("kind", ["dataclass", "enum-tuple"])
@pytest.mark.parametrize("ttl", [None, 600.0], ids=["lru", "ttl"])
def test_iteration_while_eight_threads_hit(kind: str, ttl: float | None) -> None:
    keys = _keys(kind, 200)
    cache: BoundedCache[Any, int] = BoundedCache(maxsize=len(keys), ttl=ttl)
    for i, k in enumerate(keys):
        cache[k] = i
    stop = threading.Event()
    errors: list[BaseException] = []

    def hitter(offset: int) -> None:
        try:
            i = offset
            while not stop.is_set():
                cache[keys[i % len(keys)]]  # a lock-free hit: move_to_end
                cache.get(keys[(i * 7) % len(keys)])
                i += 1
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=hitter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    expected = [(k, i) for i, k in enumerate(keys)]
    copies = 0
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            assert sorted(map(repr, cache)) == sorted(map(repr, keys))
            # every key once, each with its own value (not one read in another walk)
            assert sorted(cache.items(), key=lambda kv: kv[1]) == expected
            assert len(list(cache.keys())) == len(keys)
            assert sorted(cache.values()) == list(range(len(keys)))
            stats = cache.memscope_stats()  # samples the keys under the lock too
            assert stats["entries"] == len(keys)
            copies += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert copies > 0
    # the hits went on while iterating and the cache still hits lock-free afterwards
    assert cache.stats().hits > 0
    assert cache._lock_free_reads is cache_mod._LOCK_FREE_READS


# -- after a user's mistake ---------------------------------------------------------------------


class MutableKey:
    """A key hashed by a field the user changes after storing it (the classic mistake)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MutableKey) and other.n == self.n


CONFIGS = [
    {"maxsize": 4},
    {"maxsize": 4, "ttl": 60.0},
    {"maxsize": 4, "max_bytes": 10_000},
    {"maxsize": 4, "ttl": 60.0, "max_bytes": 10_000},
]
CONFIG_IDS = ["lru", "ttl", "bytes", "ttl+bytes"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.fail = False

    def __call__(self) -> float:
        if self.fail:
            self.fail = False
            raise OSError("clock unavailable")
        return self.now


def _still_usable(cache: BoundedCache[Any, Any], clock: Clock) -> None:
    """Every operation works and the bookkeeping agrees with itself again."""
    for i in range(10):  # writes that evict past maxsize and sweep
        cache[f"k{i}"] = i
    assert len(cache) == 4
    assert list(cache) == ["k6", "k7", "k8", "k9"]
    assert dict(cache.items()) == {"k6": 6, "k7": 7, "k8": 8, "k9": 9}
    assert "k9" in cache and cache["k9"] == 9
    clock.now += 120.0
    cache.expire()
    assert len(cache) == (0 if cache.ttl is not None else 4)
    cache.memscope_stats()
    with cache._lock:
        keys = set(cache._data)
        if cache._expires is not None:
            assert set(cache._expires) == keys
        if cache._sizes is not None:
            assert set(cache._sizes) == keys
            assert cache._bytes == sum(cache._sizes.values())


@pytest.mark.parametrize("kwargs", CONFIGS, ids=CONFIG_IDS)
def test_a_key_whose_hash_changed_is_lost_not_fatal(kwargs: dict[str, Any]) -> None:
    clock = Clock()
    cache: BoundedCache[Any, Any] = BoundedCache(**kwargs, timer=clock)
    bad = MutableKey(1)
    cache[bad] = "bad"
    cache["a"] = "a"
    bad.n = 2  # a plain dict would just lose this entry
    assert bad not in cache
    assert cache.get(bad) is None
    # walking the order reaches the entry that its key no longer finds: it is dropped
    assert list(cache) == ["a"]
    assert len(cache) == 1
    _still_usable(cache, clock)
    stats = cache.stats()
    assert stats.lost == 1
    assert cache.memscope_stats()["lost"] == 1
    assert stats.to_dict()["lost"] == 1


@pytest.mark.parametrize("kwargs", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_key_whose_hash_changed_anywhere_in_the_order(kwargs: dict[str, Any], where: str) -> None:
    clock = Clock()
    cache: BoundedCache[Any, Any] = BoundedCache(**kwargs, timer=clock)
    bad = MutableKey(1)
    names = {"first": 0, "middle": 1, "last": 2}
    for i in range(3):
        if i == names[where]:
            cache[bad] = "bad"
        else:
            cache[f"x{i}"] = i
    bad.n = 99
    # each of these ran into the broken entry before (a KeyError until clear())
    assert len(cache) in (2, 3)
    cache.expire()
    cache["y"] = 1
    _still_usable(cache, clock)
    # lost, or evicted first (an eviction finds the entry by the hash stored with it)
    s = cache.stats()
    assert s.lost + s.evictions_size == 3 + 1 + 10 - 4


@pytest.mark.parametrize("kwargs", CONFIGS[1:2] + CONFIGS[3:], ids=["ttl", "ttl+bytes"])
def test_a_failing_timer_leaves_no_entry_without_expiry(kwargs: dict[str, Any]) -> None:
    clock = Clock()
    cache: BoundedCache[Any, Any] = BoundedCache(**kwargs, timer=clock)
    cache["a"] = 1
    clock.fail = True
    with pytest.raises(OSError, match="clock unavailable"):
        cache["b"] = 2
    assert "b" not in cache  # raised KeyError before: an entry with no expiry record
    assert cache.get("b") is None
    assert cache["a"] == 1
    _still_usable(cache, clock)
    assert cache.stats().lost == 0  # the failed write stored nothing: nothing to lose
    assert "lost" not in cache.memscope_stats()  # the row stays as it was when nothing is lost
