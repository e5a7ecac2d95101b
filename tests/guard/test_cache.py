"""BoundedCache: the mapping, LRU, ttl, bytes, callbacks, stats, registration, threads."""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memscope
from memscope.guard import cache as cache_mod
from memscope.guard import cache_decorator
from memscope.guard.cache import (
    ENTRY_OVERHEAD_BYTES,
    TTL_OVERHEAD_BYTES,
    BoundedCache,
    CacheStats,
    default_getsizeof,
)


class FakeClock:
    """A timer the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def check_invariants(cache: BoundedCache[Any, Any]) -> None:
    """Internal bookkeeping agrees with itself (read under the cache's lock)."""
    with cache._lock:
        keys = list(cache._data)
        assert len(keys) == len(set(keys))
        assert len(keys) <= cache.maxsize
        if cache._expires is not None:
            assert set(cache._expires) == set(keys)
            times = list(cache._expires.values())
            assert times == sorted(times)  # write order is expiry order
        if cache._sizes is not None:
            assert set(cache._sizes) == set(keys)
            assert cache._bytes == sum(cache._sizes.values())
            if cache.max_bytes is not None:
                assert cache._bytes <= cache.max_bytes
        assert not cache._flights
        assert not cache._aflights


# -- construction ----------------------------------------------------------------------------


# one rule: a wrong type is a TypeError, a value out of range a ValueError; both name the argument
@pytest.mark.parametrize(
    ("kwargs", "error", "arg"),
    [
        ({"maxsize": 0}, ValueError, "maxsize"),
        ({"maxsize": -3}, ValueError, "maxsize"),
        ({"maxsize": 2.5}, TypeError, "maxsize"),
        ({"maxsize": True}, TypeError, "maxsize"),
        ({"maxsize": "10"}, TypeError, "maxsize"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": -1.0}, ValueError, "ttl"),
        ({"ttl": float("nan")}, ValueError, "ttl"),
        ({"ttl": float("inf")}, ValueError, "ttl"),
        ({"ttl": "60"}, TypeError, "ttl"),
        ({"max_bytes": 0}, ValueError, "max_bytes"),
        ({"max_bytes": 1.5}, TypeError, "max_bytes"),
        ({"max_bytes": False}, TypeError, "max_bytes"),
        ({"getsizeof": 3}, TypeError, "getsizeof"),
        ({"timer": None}, TypeError, "timer"),
        ({"on_evict": "log"}, TypeError, "on_evict"),
        ({"name": ""}, ValueError, "name"),
        ({"name": 5}, TypeError, "name"),
    ],
)
def test_bad_arguments_name_the_argument(
    kwargs: dict[str, Any], error: type[Exception], arg: str
) -> None:
    with pytest.raises(error, match=rf"^{arg} must be "):
        BoundedCache(**kwargs)


def test_properties_are_read_only() -> None:
    cache: BoundedCache[str, int] = BoundedCache(64, ttl=600.0, max_bytes=None, name="models")
    assert (cache.maxsize, cache.ttl, cache.max_bytes, cache.name) == (64, 600.0, None, "models")
    assert cache.currsize == 0
    assert cache.currbytes is None  # bytes are not accounted without max_bytes or getsizeof
    with pytest.raises(AttributeError):
        cache.maxsize = 3  # type: ignore[misc]


def test_exported_from_both_packages() -> None:
    import memscope.guard

    assert memscope.BoundedCache is BoundedCache
    assert memscope.guard.BoundedCache is BoundedCache
    assert memscope.guard.bounded_cache is cache_decorator.bounded_cache


# -- the mapping and LRU -----------------------------------------------------------------------


def test_mapping_basics() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10)
    cache["a"] = 1
    cache.update(b=2, c=3)
    assert cache["a"] == 1
    assert cache.get("zz") is None
    assert cache.get("zz", 7) == 7
    assert "b" in cache and "zz" not in cache
    assert len(cache) == 3
    assert sorted(cache) == ["a", "b", "c"]
    assert cache.pop("b") == 2
    assert cache.pop("b", None) is None
    with pytest.raises(KeyError):
        cache.pop("b")
    with pytest.raises(KeyError):
        cache["b"]
    del cache["a"]
    with pytest.raises(KeyError):
        del cache["a"]
    assert cache.setdefault("c", 99) == 3
    assert cache.setdefault("d", 4) == 4
    assert dict(cache.items()) == {"c": 3, "d": 4}
    assert list(cache.values()) == [3, 4]
    assert ("c", 3) in cache.items() and ("c", 4) not in cache.items()
    assert cache == {"c": 3, "d": 4}
    cache.clear()
    assert len(cache) == 0 and not cache


def test_lru_eviction_order() -> None:
    evicted: list[tuple[Any, Any, str]] = []
    cache: BoundedCache[int, str] = BoundedCache(
        3, on_evict=lambda k, v, r: evicted.append((k, v, r))
    )
    for i in range(3):
        cache[i] = str(i)
    cache[0]  # 0 becomes most recent: order 1, 2, 0
    assert cache.get(1) == "1"  # order 2, 0, 1
    assert 2 in cache  # membership does not refresh
    cache[3] = "3"
    assert evicted == [(2, "2", "size")]
    assert list(cache) == [0, 1, 3]
    cache[0] = "zero"  # overwrite refreshes and is not an eviction
    assert list(cache) == [1, 3, 0]
    assert cache.popitem() == (1, "1")
    assert evicted == [(2, "2", "size")]
    cache.clear()
    with pytest.raises(KeyError, match="empty"):
        cache.popitem()
    assert evicted == [(2, "2", "size")]  # clear() and popitem() are not evictions


def test_reading_views_does_not_change_lru_or_stats() -> None:
    cache: BoundedCache[int, int] = BoundedCache(3)
    for i in range(3):
        cache[i] = i
    before = cache.stats()
    assert list(cache.items()) == [(0, 0), (1, 1), (2, 2)]
    assert list(cache.values()) == [0, 1, 2]
    assert list(cache.keys()) == [0, 1, 2]
    after = cache.stats()
    assert (after.hits, after.misses) == (before.hits, before.misses)
    cache[3] = 3
    assert 0 not in cache  # 0 was still least recently used


def test_iterating_while_mutating_is_safe() -> None:
    cache: BoundedCache[int, int] = BoundedCache(100)
    for i in range(10):
        cache[i] = i
    seen = []
    for key in cache:
        seen.append(key)
        cache[key + 100] = key  # would break a live OrderedDict iterator
        cache.get(key)
    assert seen == list(range(10))


def test_repr_is_bounded_and_shows_no_values() -> None:
    cache: BoundedCache[int, str] = BoundedCache(5, name="r")
    cache[1] = "secret" * 1000
    text = repr(cache)
    assert "secret" not in text and "name='r'" in text and "currsize=1" in text


# -- ttl -----------------------------------------------------------------------------------------


def test_ttl_expiry_on_read_and_expire() -> None:
    clock = FakeClock()
    evicted: list[tuple[Any, Any, str]] = []
    cache: BoundedCache[str, int] = BoundedCache(
        10, ttl=5.0, timer=clock, on_evict=lambda k, v, r: evicted.append((k, v, r))
    )
    cache["a"] = 1
    clock.now += 3
    cache["b"] = 2
    assert cache["a"] == 1  # reads do not extend life
    clock.now += 2  # a is 5 s old: expired (expires_at <= now)
    with pytest.raises(KeyError):
        cache["a"]
    assert evicted == [("a", 1, "ttl")]
    assert cache.get("b") == 2
    cache["b"] = 20  # a write restarts the clock
    clock.now += 4.5
    assert cache["b"] == 20
    assert cache.expire() == 0
    clock.now += 1
    assert cache.expire() == 1
    assert cache.expire() == 0
    assert len(cache) == 0
    s = cache.stats()
    assert (s.evictions_ttl, s.hits, s.misses) == (2, 3, 1)
    check_invariants(cache)


def test_expired_entries_are_invisible() -> None:
    clock = FakeClock()
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=1.0, timer=clock)
    cache.update(a=1, b=2)
    clock.now += 1
    assert "a" not in cache
    assert cache.get("b", "gone") == "gone"
    cache["c"] = 3
    clock.now += 1
    cache["d"] = 4
    assert list(cache) == ["d"] and len(cache) == 1 and cache.currsize == 1
    assert cache.pop("c", None) is None
    assert cache.setdefault("c", 30) == 30
    clock.now += 1
    with pytest.raises(KeyError):
        del cache["c"]
    assert cache.stats().evictions_ttl == 5


def test_write_sweep_is_bounded() -> None:
    clock = FakeClock()
    cache: BoundedCache[int, int] = BoundedCache(1000, ttl=1.0, timer=clock)
    for i in range(100):
        cache[i] = i
    clock.now += 2
    cache[1000] = 0
    # one write removes only a few expired entries (amortised O(1)), not all 100
    assert len(cache._data) == 101 - cache_mod._SWEEP_PER_WRITE
    for i in range(2000, 2010):
        cache[i] = i
    sweep = cache_mod._SWEEP_PER_WRITE
    old_left = 100 - 11 * sweep
    assert len(cache._data) == old_left + 11
    assert cache.expire() == old_left
    assert len(cache) == 11
    check_invariants(cache)


# -- bytes ---------------------------------------------------------------------------------------


def test_max_bytes_evicts_lru_by_bytes() -> None:
    evicted: list[tuple[Any, Any, str]] = []
    item = 100
    limit = 3 * (item + ENTRY_OVERHEAD_BYTES)
    cache: BoundedCache[str, bytes] = BoundedCache(
        100,
        max_bytes=limit,
        getsizeof=lambda k, v: len(v),
        on_evict=lambda k, v, r: evicted.append((k, v, r)),
    )
    for name in "abc":
        cache[name] = b"x" * item
    assert cache.currbytes == limit
    cache["a"]  # refresh a: b is LRU now
    cache["d"] = b"y" * (2 * item)  # needs room of two small entries... minus one overhead
    assert [(k, r) for k, _v, r in evicted] == [("b", "bytes"), ("c", "bytes")]
    assert list(cache) == ["a", "d"]
    assert cache.currbytes == 3 * item + 2 * ENTRY_OVERHEAD_BYTES
    assert cache.stats().evictions_bytes == 2
    check_invariants(cache)


def test_item_larger_than_max_bytes_is_rejected_and_cache_unchanged() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(
        10, max_bytes=1000, getsizeof=lambda k, v: len(v)
    )
    cache["k"] = b"small"
    cache["other"] = b"x"
    before = (list(cache.items()), cache.currbytes, cache.stats())
    with pytest.raises(ValueError, match=r"max_bytes=1000") as info:
        cache["k"] = b"x" * 5000
    assert str(5000 + ENTRY_OVERHEAD_BYTES) in str(info.value)
    assert (list(cache.items()), cache.currbytes, cache.stats()) == before
    with pytest.raises(ValueError, match="max_bytes"):
        cache.setdefault("new", b"x" * 5000)
    assert "new" not in cache


def test_bad_getsizeof_result_leaves_cache_unchanged() -> None:
    cache: BoundedCache[str, Any] = BoundedCache(10, max_bytes=10_000, getsizeof=lambda k, v: v)
    cache["ok"] = 5
    for bad in (-1, 2.5, "7", None, True):
        with pytest.raises(TypeError, match="getsizeof"):
            cache["bad"] = bad
    assert list(cache) == ["ok"]
    assert cache.currbytes == 5 + ENTRY_OVERHEAD_BYTES


def test_getsizeof_without_max_bytes_accounts_bytes() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(2, ttl=60.0, getsizeof=lambda k, v: len(v))
    cache["a"] = b"12345"
    assert cache.currbytes == 5 + ENTRY_OVERHEAD_BYTES + TTL_OVERHEAD_BYTES
    assert cache.memscope_stats()["size_bytes"] == cache.currbytes


class _Array:
    """Stands in for an ndarray or tensor: small object, big buffer reported in nbytes."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def test_default_getsizeof_estimate() -> None:
    blob = b"x" * 10_000
    assert default_getsizeof("k", blob) == sys.getsizeof("k") + sys.getsizeof(blob)
    assert default_getsizeof(1, _Array(50_000)) >= 50_000
    # one level into builtin containers: the blobs a dict value holds are counted
    model = {"weights": blob, "bias": b"y" * 5000}
    assert default_getsizeof("m", model) >= 15_000
    assert default_getsizeof(("a", 1), [blob, blob]) >= 20_000
    cache: BoundedCache[str, Any] = BoundedCache(10, max_bytes=100_000)
    cache["m"] = model
    assert cache.currbytes == default_getsizeof("m", model) + ENTRY_OVERHEAD_BYTES


# -- callbacks -----------------------------------------------------------------------------------


def test_on_evict_exception_is_logged_and_cache_intact(caplog: pytest.LogCaptureFixture) -> None:
    def boom(key: int, value: int, reason: str) -> None:
        raise RuntimeError("callback broke")

    cache: BoundedCache[int, int] = BoundedCache(2, on_evict=boom, name="fragile")
    with caplog.at_level(logging.ERROR, logger="memscope"):
        for i in range(5):
            cache[i] = i
    assert list(cache.items()) == [(3, 3), (4, 4)]
    assert cache.stats().evictions_size == 3
    assert sum("fragile" in r.getMessage() for r in caplog.records) == 3
    check_invariants(cache)


def test_on_evict_runs_outside_the_lock() -> None:
    seen: list[Any] = []
    cache: BoundedCache[int, int] = BoundedCache(2)

    def reenter(key: int, value: int, reason: str) -> None:
        # would deadlock if called with the (non-reentrant) lock held
        seen.append((key, cache.get(key), len(cache), cache._lock.locked()))
        cache[1000 + key] = value

    cache._on_evict = reenter
    for i in range(3):
        cache[i] = i
    assert seen[0] == (0, None, 2, False)
    check_invariants(cache)


# -- stats and registration ----------------------------------------------------------------------


def test_stats_and_memscope_stats() -> None:
    cache: BoundedCache[int, int] = BoundedCache(2, max_bytes=10_000, getsizeof=lambda k, v: 10)
    cache[1] = 1
    cache[1]
    cache.get(2)
    cache[2] = 2
    cache[3] = 3
    s = cache.stats()
    assert isinstance(s, CacheStats)
    assert s.to_dict() == {
        "hits": 1,
        "misses": 1,
        "evictions": 1,
        "evictions_size": 1,
        "evictions_bytes": 0,
        "evictions_ttl": 0,
        "entries": 2,
        "bytes": 2 * (10 + ENTRY_OVERHEAD_BYTES),
    }
    assert s.evictions == 1
    assert cache.memscope_stats() == {
        "entries": 2,
        "maxsize": 2,
        "hits": 1,
        "misses": 1,
        "evictions": 1,
        "evictions_size": 1,
        "evictions_bytes": 0,
        "evictions_ttl": 0,
        "size_bytes": 2 * (10 + ENTRY_OVERHEAD_BYTES),
    }
    # without byte accounting the size is a sampled estimate (never a copy of the cache)
    plain = BoundedCache(1000)
    for i in range(1000):
        plain[i] = bytes(100)
    stats = plain.memscope_stats()
    assert stats["size_estimated"] is True
    assert 1000 * 100 < stats["size_bytes"] < 1000 * 400
    cache.clear()
    assert cache.stats().hits == 1  # clear() keeps the counters


def _tracked_rows() -> dict[str, dict[str, Any]]:
    section = memscope.snapshot(collectors=["tracked"])["tracked"]
    return {row["name"]: row for row in section["objects"]}


def test_registers_weakly_with_tracked(collected: None) -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(8, max_bytes=1 << 20, name="test-weak-cache")
    cache["a"] = b"x" * 1000
    row = _tracked_rows()["test-weak-cache"]
    assert row["size_bytes"] == cache.currbytes
    assert row["stats"]["entries"] == 1 and row["stats"]["maxsize"] == 8
    assert row["clearable"] is True
    memscope.clear_caches()
    assert len(cache) == 0
    del cache
    gc.collect()
    assert "test-weak-cache" not in _tracked_rows()


def test_unnamed_cache_is_named_where_it_was_made(collected: None) -> None:
    cache: BoundedCache[int, int] = BoundedCache(4)
    cache[1] = 1
    expected = f"{__name__}.test_unnamed_cache_is_named_where_it_was_made.cache"
    assert cache.name == expected
    row = _tracked_rows()[expected]
    assert row["type"].endswith("BoundedCache") and row["stats"]["entries"] == 1
    del cache


# -- model-based check against a reference LRU -----------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "get", "del", "tick", "contains", "get_or_set"]),
        st.integers(0, 7),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, maxsize=st.integers(1, 5))
def test_matches_reference_lru_with_ttl(ops: list[tuple[str, int]], maxsize: int) -> None:
    clock = FakeClock()
    ttl = 3.0
    cache: BoundedCache[int, int] = BoundedCache(maxsize, ttl=ttl, timer=clock)
    ref: OrderedDict[int, tuple[int, float]] = OrderedDict()  # key -> (value, written_at)

    def ref_live(key: int) -> bool:
        if key in ref and ref[key][1] + ttl <= clock.now:
            del ref[key]
        return key in ref

    for op, key in ops:
        if op == "set":
            ref[key] = (key * 10, clock.now)
            ref.move_to_end(key)
            while len(ref) > maxsize:
                ref.popitem(last=False)
            cache[key] = key * 10
        elif op == "get":
            expected = ref[key][0] if ref_live(key) else None
            if expected is not None:
                ref.move_to_end(key)
            assert cache.get(key) == expected
        elif op == "get_or_set":
            if ref_live(key):
                ref.move_to_end(key)
            else:
                ref[key] = (key * 10, clock.now)
                while len(ref) > maxsize:
                    ref.popitem(last=False)
            assert cache.get_or_set(key, lambda k=key: k * 10) == key * 10  # type: ignore[misc]
        elif op == "del":
            if ref_live(key):
                del ref[key]
                del cache[key]
            else:
                with pytest.raises(KeyError):
                    del cache[key]
        elif op == "contains":
            assert (key in cache) == ref_live(key)
        else:
            clock.now += 1.0
        live = [k for k in list(ref) if ref_live(k)]
        assert list(cache) == live
    check_invariants(cache)


# -- threads -------------------------------------------------------------------------------------


def _hammer(cache: BoundedCache[int, Any], seconds: float, threads: int = 8) -> list[BaseException]:
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop:
                for _ in range(200):
                    key = rng.randrange(64)
                    op = rng.random()
                    if op < 0.4:
                        cache.get(key)
                    elif op < 0.65:
                        cache[key] = b"v" * rng.randrange(1, 400)
                    elif op < 0.75:
                        cache.pop(key, None)
                    elif op < 0.9:
                        cache.get_or_set(key, lambda: b"f" * 50)
                    elif op < 0.95:
                        with contextlib.suppress(KeyError):
                            cache[key]
                    elif op < 0.98:
                        list(cache.items())
                    else:
                        cache.expire()
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return errors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maxsize": 32},
        {"maxsize": 48, "ttl": 0.002, "max_bytes": 20 * 700},
    ],
    ids=["lru", "ttl+bytes"],
)
def test_eight_threads_hammering_keep_invariants(kwargs: dict[str, Any]) -> None:
    evictions: list[str] = []
    frozen: list[float] = []

    def timer() -> float:
        return frozen[0] if frozen else time.monotonic()

    cache: BoundedCache[int, Any] = BoundedCache(
        **kwargs, timer=timer, on_evict=lambda k, v, r: evictions.append(r)
    )
    errors = _hammer(cache, seconds=1.5)
    # real time while the threads run; then it stands still, so a 2 ms ttl cannot expire
    # an entry between two of the reads below
    frozen.append(time.monotonic())
    assert errors == []
    check_invariants(cache)
    s = cache.stats()
    assert s.entries == len(cache) == cache.currsize
    assert s.hits > 0 and s.misses > 0
    # counters agree with what the callback saw (appends are atomic)
    assert s.evictions == len(evictions)
    # LRU order still behaves: touching keys in a known order reproduces it
    keys = list(cache)
    random.Random(1).shuffle(keys)
    if cache.ttl is None:
        for k in keys:
            cache[k]
        assert list(cache) == keys
