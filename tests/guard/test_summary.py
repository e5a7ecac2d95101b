"""summarize(): bounded, size-independent descriptions for logs and errors."""

from __future__ import annotations

import collections
import logging
import tracemalloc
from typing import Any

import pytest

import memscope
from memscope.guard.summary import MIN_CHARS, SIZE_SAMPLE, summarize

MiB = 1 << 20


class Messages(list[str]):
    """A list that can be tracked weakly (plain lists cannot)."""


class RetainingHandler(logging.Handler):
    """Keeps every formatted message, like an error tracker's breadcrumbs."""

    def __init__(self, store: Messages) -> None:
        super().__init__()
        self.store = store

    def emit(self, record: logging.LogRecord) -> None:
        self.store.append(self.format(record))


@pytest.mark.parametrize(
    "obj",
    [
        b"\x00" * (8 * MiB),
        "x" * MiB,
        "é" * 100_000,
        bytearray(b"abc" * 100_000),
        memoryview(b"z" * MiB),
        [b"chunk" * 2000] * 5000,
        tuple(range(10_000)),
        collections.deque(range(10_000)),
        {str(i): b"v" * 500 for i in range(10_000)},
        set(range(10_000)),
        10**5000,
        object(),
    ],
    ids=lambda o: type(o).__name__,
)
@pytest.mark.parametrize("max_chars", [MIN_CHARS, 80, 200, 1000])
def test_output_is_bounded_and_names_type_and_length(obj: object, max_chars: int) -> None:
    text = summarize(obj, max_chars=max_chars)
    assert 0 < len(text) <= max_chars
    assert text.startswith(type(obj).__name__)
    if hasattr(obj, "__len__") and not isinstance(obj, int):
        assert f"len={len(obj):,}" in text  # type: ignore[arg-type]


def test_bytes_show_size_head_and_tail() -> None:
    data = b"HEAD" + b"." * (4 * MiB) + b"TAIL"
    text = summarize(data)
    assert text.startswith("bytes len=4,194,312 size=4.0 MiB b'HEAD")
    assert text.endswith("TAIL'")
    assert "…" in text


def test_small_values_are_shown_whole() -> None:
    assert summarize("hello") == "str len=5 size=54 B 'hello'"
    assert summarize([1, 2, 3]).endswith("[1, 2, 3]")
    assert summarize({"a": 1}).endswith("{'a': 1}")
    assert summarize(None) == "None"
    assert summarize(42) == "42"


def test_containers_show_first_and_last_items_briefly() -> None:
    chunks = [b"first"] + [b"x" * 10_000] * 998 + [b"last"]
    text = summarize(chunks)
    assert text.startswith("list len=1,000 size=~")
    assert "b'first'" in text and "b'last'" in text
    assert "<bytes len=10,000>" in text
    big = {f"k{i}": i for i in range(1000)}
    text = summarize(big)
    assert "'k0': 0" in text and "'k999': 999" in text


def test_huge_int_is_described_not_converted() -> None:
    # str() of this int would raise ValueError (int max str digits) or take quadratic time
    assert summarize(10**100_000) == "int (~100,001 digits)"


def test_cost_does_not_depend_on_size() -> None:
    """Peak allocation while summarizing a 64 MiB buffer stays a few KiB."""
    buffers: list[Any] = [
        b"\x00" * (64 * MiB),
        "y" * (64 * MiB),
        [b"c" * 64] * (1 << 20),
        {i: i for i in range(1 << 18)},
    ]
    tracemalloc.start()
    try:
        for buf in buffers:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            summarize(buf, max_chars=500)
            _, peak = tracemalloc.get_traced_memory()
            assert peak - base < 64 * 1024, (type(buf).__name__, peak - base)
    finally:
        tracemalloc.stop()


def test_only_a_bounded_number_of_items_is_read() -> None:
    reads = 0

    class CountingDict(dict[int, int]):
        def __getitem__(self, key: int) -> int:
            nonlocal reads
            reads += 1
            return super().__getitem__(key)

    summarize(CountingDict((i, i) for i in range(100_000)))
    assert reads <= SIZE_SAMPLE + 2


def test_broken_repr_does_not_raise() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    text = summarize(Broken())
    assert "repr failed: RuntimeError" in text


def test_long_custom_repr_is_clipped() -> None:
    class Chatty:
        def __repr__(self) -> str:
            return "Chatty(" + "z" * 10_000 + ")"

    text = summarize(Chatty(), max_chars=100)
    assert len(text) == 100 and text.endswith("…")


@pytest.mark.parametrize(
    ("value", "error"),
    [("200", TypeError), (True, TypeError), (2.5, TypeError), (MIN_CHARS - 1, ValueError)],
)
def test_bad_max_chars_is_rejected_clearly(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_chars"):
        summarize(b"x", max_chars=value)


def test_naive_repr_in_logs_grows_memory_summarize_does_not() -> None:
    """Proof: error messages kept by a handler, naive repr vs summarize, via memscope snapshots."""
    payload = bytes(range(256)) * (4 * MiB // 256)  # a 4 MiB request body
    naive, bounded = Messages(), Messages()
    memscope.track(naive, name="naive_messages")
    memscope.track(bounded, name="summarized_messages")
    logger = logging.getLogger("memscope.tests.summary")
    logger.propagate = False
    naive_handler, bounded_handler = RetainingHandler(naive), RetainingHandler(bounded)
    try:
        before = memscope.snapshot(label="before", collectors=["tracked"])
        logger.addHandler(naive_handler)
        for _ in range(5):
            logger.error("bad payload: %r", payload)
        logger.removeHandler(naive_handler)
        logger.addHandler(bounded_handler)
        for _ in range(5):
            logger.error("bad payload: %s", summarize(payload))
        logger.removeHandler(bounded_handler)
        after = memscope.snapshot(label="after", collectors=["tracked"])
    finally:
        logger.removeHandler(naive_handler)
        logger.removeHandler(bounded_handler)
        memscope.untrack(naive)
        memscope.untrack(bounded)
    diff = memscope.compare(before, after)
    naive_growth = diff.delta("tracked", "objects[naive_messages].size_bytes")
    bounded_growth = diff.delta("tracked", "objects[summarized_messages].size_bytes")
    # each naive message is the escaped repr: about 3x the payload
    assert naive_growth > 5 * 4 * MiB
    assert 0 < bounded_growth < 5 * 1024
