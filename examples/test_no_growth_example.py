"""How to prove code does not leak with memscope: the assertion and the pytest marker.

Run it with ``pytest examples/test_no_growth_example.py``. Every test here passes:
the leaking code is caught, and the check is shown catching it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

import memscope
from memscope.testing import assert_no_growth


class Registry:
    """A service-style registry that forgets to remove what it adds."""

    def __init__(self) -> None:
        self.handlers: list[object] = []

    def subscribe(self, handler: object) -> None:
        self.handlers.append(handler)


@functools.lru_cache(maxsize=128)
def parse_config(name: str) -> dict[str, str]:
    """A bounded cache: fills once, then stays put (not a leak)."""
    return {"name": name, "upper": name.upper()}


def handle_request(registry: Registry) -> None:
    """Leaks: a new callback per request, never unsubscribed."""
    registry.subscribe(lambda event: event)


def test_a_bounded_cache_is_not_a_leak() -> None:
    # a single before/after byte check would flag the first fill; warmup runs absorb it
    assert_no_growth(parse_config, "service.toml")


def test_the_assertion_catches_a_leak() -> None:
    registry = Registry()
    with pytest.raises(memscope.MemoryGrowthError) as info:
        assert_no_growth(handle_request, registry, warmup=2, rounds=4)
    report = info.value.report
    assert [row.type for row in report.grew] == ["function"]
    # one more function every call; growth on every round, so the check kept measuring
    # (up to max_rounds) to tell a leak from a cache that is still filling
    deltas = report.grew[0].deltas
    assert len(deltas) >= 4 and set(deltas) == {1}
    print(info.value)  # per-round deltas, the types that grew, the allocation sites


@pytest.fixture
def scratch_buffers() -> Iterator[list[bytes]]:
    """Allocates per test and frees it in teardown: the marker sees both halves."""
    buffers = [bytes(1024) for _ in range(64)]
    yield buffers
    buffers.clear()


@pytest.mark.no_growth(warmup=2, rounds=4)
def test_the_marker_reruns_the_whole_test(scratch_buffers: list[bytes]) -> None:
    # setup, body and teardown run 2 + 4 times; the test fails if memory grows every time
    assert sum(map(len, scratch_buffers)) == 64 * 1024
