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
    copies = 0
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            assert sorted(map(repr, cache)) == sorted(map(repr, keys))
            assert len(list(cache.items())) == len(keys)
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
