"""SSEBuffer: spec conformance table, chunking, bounds and policies, API, registration."""

from __future__ import annotations

import dataclasses
import gc
import random
from collections.abc import Iterator
from typing import Any

import pytest

import memscope
from memscope._base.tracking import tracked_objects
from memscope.collectors.tracked import TrackedCollector
from memscope.guard import sse as sse_mod
from memscope.guard.sse import (
    LINE_OVERHEAD_BYTES,
    Event,
    SSEBuffer,
    SSEOverflowError,
    aiter_sse,
    iter_sse,
)

Row = tuple[str, str, str, "int | None"]

# (name, stream, expected (event, data, id, retry) rows)
CASES: list[tuple[str, bytes, list[Row]]] = [
    ("lf", b"data: hello\n\n", [("message", "hello", "", None)]),
    ("crlf", b"data: hello\r\n\r\n", [("message", "hello", "", None)]),
    ("cr", b"data: hello\r\r", [("message", "hello", "", None)]),
    (
        "mixed endings",
        b"data: a\r\ndata: b\rdata: c\n\r\n",
        [("message", "a\nb\nc", "", None)],
    ),
    ("lf then cr blank", b"data: a\n\r", [("message", "a", "", None)]),
    (
        "cr then crlf is two line ends",
        b"data: a\r\r\ndata: b\n\n",
        [("message", "a", "", None), ("message", "b", "", None)],
    ),
    ("bom dropped", b"\xef\xbb\xbfdata: a\n\n", [("message", "a", "", None)]),
    (
        "only one bom dropped",
        b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
        [("message", "b", "", None)],
    ),
    ("bom later is data", b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [("message", "a", "", None)]),
    ("bom inside value kept", b"data: \xef\xbb\xbfx\n\n", [("message", "\ufeffx", "", None)]),
    ("comment", b": hello\ndata: a\n\n", [("message", "a", "", None)]),
    ("comment only block", b": ping\n\n:\n\n", []),
    ("no space after colon", b"data:a\n\n", [("message", "a", "", None)]),
    ("one space stripped", b"data:  a\n\n", [("message", " a", "", None)]),
    ("tab kept", b"data:\ta\n\n", [("message", "\ta", "", None)]),
    ("data without colon", b"data\n\n", [("message", "", "", None)]),
    ("empty data", b"data:\n\n", [("message", "", "", None)]),
    ("two empty data lines", b"data\ndata\n\n", [("message", "\n", "", None)]),
    ("multi-line data", b"data: a\ndata: b\ndata: c\n\n", [("message", "a\nb\nc", "", None)]),
    ("trailing empty data line", b"data: a\ndata:\n\n", [("message", "a\n", "", None)]),
    ("colons in value", b"data: a:b: c\n\n", [("message", "a:b: c", "", None)]),
    ("event type", b"event: add\ndata: x\n\n", [("add", "x", "", None)]),
    (
        "event type resets after dispatch",
        b"event: add\ndata: x\n\ndata: y\n\n",
        [("add", "x", "", None), ("message", "y", "", None)],
    ),
    (
        "event type resets on a dataless blank line",
        b"event: add\n\ndata: y\n\n",
        [("message", "y", "", None)],
    ),
    ("empty event type is message", b"event:\ndata: x\n\n", [("message", "x", "", None)]),
    ("event without colon", b"event\ndata: x\n\n", [("message", "x", "", None)]),
    ("last event type wins", b"event: a\nevent: b\ndata: x\n\n", [("b", "x", "", None)]),
    ("id", b"id: 1\ndata: a\n\n", [("message", "a", "1", None)]),
    (
        "id persists",
        b"id: 1\ndata: a\n\ndata: b\n\n",
        [("message", "a", "1", None), ("message", "b", "1", None)],
    ),
    ("id in a dataless block applies", b"id: 7\n\ndata: b\n\n", [("message", "b", "7", None)]),
    (
        "id with NUL ignored",
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [("message", "a", "1", None), ("message", "b", "1", None)],
    ),
    (
        "empty id resets",
        b"id: 1\ndata: a\n\nid\ndata: b\n\n",
        [("message", "a", "1", None), ("message", "b", "", None)],
    ),
    ("retry", b"retry: 3000\ndata: a\n\n", [("message", "a", "", 3000)]),
    ("retry not digits", b"retry: 3s\ndata: a\n\n", [("message", "a", "", None)]),
    ("retry extra space", b"retry:  30\ndata: a\n\n", [("message", "a", "", None)]),
    ("retry empty", b"retry\ndata: a\n\n", [("message", "a", "", None)]),
    ("retry negative", b"retry: -5\ndata: a\n\n", [("message", "a", "", None)]),
    (
        "retry non-ascii digits",
        "retry: \u0661\u0662\ndata: a\n\n".encode(),
        [("message", "a", "", None)],
    ),
    ("unknown field", b"foo: bar\ndata: a\n\n", [("message", "a", "", None)]),
    ("field names are case-sensitive", b"Data: a\n\n", []),
    ("leading space in field name", b" data: a\n\n", []),
    ("unfinished event dropped", b"data: a\n\ndata: b\n", [("message", "a", "", None)]),
    ("unfinished line dropped", b"data: a\n\ndata: b", [("message", "a", "", None)]),
    ("blank lines only", b"\n\n\r\n\r", []),
    (
        "utf-8 text",
        "data: h\u00e9llo \u4e16\U0001f600\n\n".encode(),
        [("message", "h\u00e9llo \u4e16\U0001f600", "", None)],
    ),
    ("invalid byte replaced", b"data: a\xffb\n\n", [("message", "a\ufffdb", "", None)]),
    ("truncated sequence replaced", b"data: \xe2\x82x\n\n", [("message", "\ufffdx", "", None)]),
    (
        "encoded surrogate replaced",
        b"data: \xed\xa0\x80\n\n",
        [("message", "\ufffd" * 3, "", None)],
    ),
    ("NUL in data kept", b"data: a\x00b\n\n", [("message", "a\x00b", "", None)]),
]


def rows(events: list[Event]) -> list[Row]:
    return [(e.event, e.data, e.id, e.retry) for e in events]


def feed_all(buf: SSEBuffer, chunks: list[bytes]) -> list[Event]:
    out: list[Event] = []
    for chunk in chunks:
        out += buf.feed(chunk)
    out += buf.close()
    return out


def chunkings(stream: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [stream]
    yield "bytewise", [stream[i : i + 1] for i in range(len(stream))]
    for seed in range(4):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(1, 5))))
        yield f"random{seed}", [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]


@pytest.fixture(params=[True, False], ids=["fast-path", "checked-path"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test through both decoding loops (the unchecked fast one and the checked one)."""
    monkeypatch.setattr(sse_mod, "_FAST_PATH", request.param)
    return bool(request.param)


@pytest.mark.parametrize(("stream", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conformance(stream: bytes, expected: list[Row], fast_path: bool) -> None:
    for label, chunks in chunkings(stream):
        assert rows(feed_all(SSEBuffer(), chunks)) == expected, label


def test_conformance_table_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: a\r", b"\n\r", b"\ndata: b\r", b"\r"],
        [b"data: a\r", b"\r"],
        [b"data: a\r\n", b"\r", b"\n"],
    ],
)
def test_cr_at_chunk_end_dispatches_without_waiting(chunks: list[bytes]) -> None:
    buf = SSEBuffer()
    got: list[Event] = []
    for chunk in chunks:
        got += buf.feed(chunk)
    assert got[0].data == "a"
    # the line ended at the CR: nothing is pending, no later chunk was needed
    assert len(buf) == 0


def test_lf_after_a_chunk_final_cr_is_swallowed_once() -> None:
    buf = SSEBuffer()
    assert buf.feed(b"data: a\r") == []
    got = rows(buf.feed(b"\n\ndata: b\n\n"))
    assert got == [("message", "a", "", None), ("message", "b", "", None)]


def test_str_and_bytes_like_chunks() -> None:
    buf = SSEBuffer()
    assert rows(buf.feed("\ufeffdata: \u00e9\n\n")) == [("message", "\u00e9", "", None)]
    assert rows(buf.feed(bytearray(b"data: b\n\n"))) == [("message", "b", "", None)]
    assert rows(buf.feed(memoryview(b"data: c\n\n"))) == [("message", "c", "", None)]
    # a half character then a str: the half character becomes U+FFFD, like at end of stream
    assert buf.feed(b"data: \xc3") == []
    assert rows(buf.feed("x\n\n")) == [("message", "\ufffdx", "", None)]
    assert buf.bytes_total == len("\ufeffdata: \u00e9\n\n".encode()) + 9 + 9 + 7 + 3


@pytest.mark.parametrize("bad", [None, 5, ["data: a\n"], object()])
def test_feed_rejects_other_types(bad: Any) -> None:
    buf = SSEBuffer()
    with pytest.raises(TypeError, match="chunk must be bytes"):
        buf.feed(bad)
    assert rows(buf.feed(b"data: ok\n\n")) == [("message", "ok", "", None)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_event_bytes": 0}, ValueError, r"max_event_bytes must be an int \(bytes\) >= 1"),
        ({"max_event_bytes": -3}, ValueError, r"max_event_bytes must be an int \(bytes\) >= 1"),
        ({"max_event_bytes": 1.5}, TypeError, "max_event_bytes must be an int"),
        ({"max_event_bytes": True}, TypeError, "max_event_bytes must be an int"),
        ({"max_event_bytes": "1"}, TypeError, "max_event_bytes must be an int"),
        ({"max_line_bytes": 0}, ValueError, r"max_line_bytes must be an int \(bytes\) >= 1"),
        ({"max_event_bytes": 10, "max_line_bytes": 11}, ValueError, "max_line_bytes"),
        ({"on_overflow": "drop"}, ValueError, "on_overflow must be one of 'raise', 'skip'"),
        ({"keep_raw": 1}, TypeError, "keep_raw must be True or False"),
        ({"name": ""}, ValueError, "name must be a non-empty str"),
        ({"name": 3}, TypeError, "name must be a non-empty str or None"),
    ],
)
def test_constructor_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        SSEBuffer(**kwargs)


def test_defaults() -> None:
    buf = SSEBuffer()
    assert buf.max_event_bytes == 16 * 1024 * 1024
    assert buf.max_line_bytes == buf.max_event_bytes
    assert buf.on_overflow == "raise"
    assert buf.keep_raw is False
    assert len(buf) == 0


def test_retry_and_last_event_id_live_on_the_buffer() -> None:
    buf = SSEBuffer()
    # a retry-only block dispatches nothing but still sets the reconnection time
    assert buf.feed(b"retry: 2500\nid: 9\n\n") == []
    assert buf.retry == 2500
    assert buf.last_event_id == "9"
    (event,) = buf.feed(b"data: a\n\n")
    assert (event.id, event.retry) == ("9", None)  # retry is per block, id persists
    # a retry with more digits than int() takes is ignored, not an exception
    assert rows(buf.feed(b"retry: " + b"9" * 5000 + b"\ndata: b\n\n")) == [
        ("message", "b", "9", None)
    ]
    assert buf.retry == 2500


def test_keep_raw_gives_the_event_text() -> None:
    buf = SSEBuffer(keep_raw=True)
    events = buf.feed(b": c\r\nid: 1\r\nevent: e\r\ndata: a\r\ndata:b\r\n\r\n: ping\n\ndata: z\n\n")
    assert [e.raw for e in events] == [": c\nid: 1\nevent: e\ndata: a\ndata:b\n\n", "data: z\n\n"]
    # re-decoding the raw text gives the same event: a proxy can forward it as is
    again = SSEBuffer().feed(events[0].raw or "")
    assert rows(again) == [rows(events)[0]]
    assert SSEBuffer().feed(b"data: a\n\n")[0].raw is None


def test_flush_ends_the_event_and_keeps_the_stream() -> None:
    buf = SSEBuffer()
    assert buf.feed(b"id: 4\nevent: e\ndata: a\ndata: b") == []
    assert rows(buf.flush()) == [("e", "a\nb", "4", None)]
    assert len(buf) == 0
    assert buf.flush() == []
    (event,) = buf.feed(b"data: c\n\n")
    assert event.id == "4"


def test_close_drops_the_unfinished_event_and_starts_a_new_stream() -> None:
    buf = SSEBuffer()
    assert buf.feed(b"\xef\xbb\xbfid: 3\n\nevent: e\ndata: lost\n") == []
    assert len(buf) > 0
    assert buf.close() == []
    assert len(buf) == 0
    # a new stream: its BOM is dropped again, the last event id and counters carry over
    (event,) = buf.feed(b"\xef\xbb\xbfdata: next\n\n")
    assert (event.event, event.data, event.id) == ("message", "next", "3")
    assert buf.events_total == 1


def test_overflow_raise_carries_events_and_resynchronises() -> None:
    buf = SSEBuffer(max_event_bytes=300)
    stream = b"data: before\n\ndata: " + b"x" * 1000 + b"\ndata: tail\n\ndata: after\n\ndata: part"
    with pytest.raises(SSEOverflowError) as info:
        buf.feed(stream)
    err = info.value
    assert err.limit_name == "max_line_bytes"
    assert err.limit == 300
    assert err.size > 300
    assert "max_line_bytes=300" in str(err)
    assert rows(err.events) == [("message", "before", "", None), ("message", "after", "", None)]
    assert buf.overflows_total == 1
    assert rows(buf.feed(b"\n\n")) == [("message", "part", "", None)]


def test_overflow_raise_across_chunks_then_usable() -> None:
    buf = SSEBuffer(max_event_bytes=1024)
    assert buf.feed(b"data: ") == []
    with pytest.raises(SSEOverflowError, match="max_line_bytes=1024"):
        for _ in range(10):
            buf.feed(b"y" * 200)
    assert len(buf) == 0
    # the rest of the oversized event is skipped, whatever chunks it comes in
    assert buf.feed(b"y" * 5000 + b"\n") == []
    assert buf.feed(b"data: still skipped\n") == []
    assert rows(buf.feed(b"\ndata: ok\n\n")) == [("message", "ok", "", None)]
    assert buf.overflows_total == 1


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_flood_of_tiny_lines_is_charged_per_line(policy: str) -> None:
    cap = 100 * (LINE_OVERHEAD_BYTES + 1)
    buf = SSEBuffer(max_event_bytes=cap, on_overflow=policy)  # type: ignore[arg-type]
    assert buf.feed(b"data:\n" * 100) == []
    assert len(buf) == cap
    if policy == "raise":
        with pytest.raises(SSEOverflowError, match="max_event_bytes"):
            buf.feed(b"data:\n")
    else:
        assert buf.feed(b"data:\n") == []
    assert len(buf) == 0
    assert buf.overflows_total == 1
    assert rows(buf.feed(b"\ndata: ok\n\n")) == [("message", "ok", "", None)]


@pytest.mark.parametrize(
    "tail",
    [
        [b"\n\ndata: ok\n\n"],
        [b"\n", b"\ndata: ok\n\n"],
        [b"\r", b"\rdata: ok\n\n"],
        [b"\r\n", b"\r\ndata: ok\r\n\r\n"],
        [b"\r", b"\n", b"\r", b"\n", b"data: ok\n\n"],
    ],
)
def test_skip_resynchronises_at_a_blank_line_split_anywhere(tail: list[bytes]) -> None:
    buf = SSEBuffer(max_event_bytes=512, on_overflow="skip")
    got: list[Event] = []
    for chunk in [b"data: x", b"x" * 600, b"x" * 600, *tail]:
        got += buf.feed(chunk)
    assert rows(got) == [("message", "ok", "", None)]
    assert buf.overflows_total == 1


def test_skip_stays_bounded_on_an_endless_event() -> None:
    cap = 4096
    buf = SSEBuffer(max_event_bytes=cap, on_overflow="skip")
    line = b"data: " + b"z" * 90 + b"\n"
    for i in range(2000):  # ~200 KB of one event, no blank line
        assert buf.feed(line * 3 if i % 2 else b"zz" * 150) == []
        assert len(buf) <= cap
    assert buf.overflows_total >= 1
    assert rows(buf.feed(b"\n\ndata: end\n\n")) == [("message", "end", "", None)]


def test_event_type_counts_towards_the_bound() -> None:
    buf = SSEBuffer(max_event_bytes=100, on_overflow="skip")
    assert buf.feed(b"event: " + b"e" * 90 + b"\n") == []
    assert len(buf) == 90
    buf.feed(b"event: short\n")
    assert len(buf) == 5  # replaced, not accumulated
    buf.feed(b"data: " + b"d" * 60 + b"\n")
    assert buf.overflows_total == 1
    assert len(buf) == 0


def test_sizes_are_utf8_bytes() -> None:
    buf = SSEBuffer()
    buf.feed("data: \u00e9\u00e9\ndata: \U0001f600".encode())
    # the data value, its LF and the per-line charge, plus the whole partial line
    assert len(buf) == 4 + 1 + LINE_OVERHEAD_BYTES + len("data: ") + 4


def test_partial_line_is_kept_in_few_large_pieces() -> None:
    # linear: a long line is never re-joined per chunk and tiny chunks do not pile up
    buf = SSEBuffer()
    buf.feed(b"data: ")
    for _ in range(50_000):
        buf.feed(b"ab")
    pieces = buf._partial
    assert sum(map(len, pieces)) == 100_000 + 6
    assert all(len(p) >= sse_mod._PIECE_MIN_CHARS for p in pieces[:-1])
    assert len(pieces) <= 100_006 // sse_mod._PIECE_MIN_CHARS + 1
    (event,) = buf.feed(b"\n\n")
    assert event.data == "ab" * 50_000


def test_counters_and_stats() -> None:
    buf = SSEBuffer(max_event_bytes=200, on_overflow="skip", name="upstream")
    buf.feed(b": hi\n:\ndata: a\n\ndata: " + b"q" * 300 + b"\n\n")
    stats = buf.stats()
    assert stats == {
        "events_total": 1,
        "bytes_total": 22 + 300 + 2,
        "overflows_total": 1,
        "comments_total": 2,
        "pending_bytes": 0,
        "max_event_bytes": 200,
        "max_line_bytes": 200,
    }
    buf.feed(b"data: pending")
    ms = buf.memscope_stats()
    assert ms["size_bytes"] == len(buf) == len("data: pending")
    assert ms["overflows_total"] == 1
    assert "upstream" in repr(buf)


def test_registered_weakly_with_the_tracked_collector() -> None:
    buf = SSEBuffer(name="sse-test-registration")
    buf.feed(b"data: abc")
    section = TrackedCollector().collect()
    (row,) = [r for r in section["objects"] if r["name"] == "sse-test-registration"]
    assert row["size_bytes"] == 9  # the partial line
    assert row["stats"]["events_total"] == 0
    del buf, row, section
    gc.collect()
    assert not [n for n, _, _ in tracked_objects() if n == "sse-test-registration"]


def test_event_is_a_frozen_dataclass() -> None:
    (event,) = SSEBuffer().feed(b"event: e\nid: 1\ndata: " + b"d" * 500 + b"\n\n")
    assert type(event) is Event
    assert event == Event("e", "d" * 500, "1", None, None)
    assert hash(event) == hash(Event("e", "d" * 500, "1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert dataclasses.replace(event, data="x").data == "x"
    assert len(repr(event)) < 300  # bounded: events can be megabytes


def test_top_level_reexports() -> None:
    assert memscope.SSEBuffer is SSEBuffer
    from memscope import guard

    assert guard.Event is Event and guard.iter_sse is iter_sse and guard.aiter_sse is aiter_sse
    assert guard.SSEOverflowError is SSEOverflowError


def test_iter_sse() -> None:
    chunks = [b"data: a\n", b"\nid: 2\ndata: b\n\ndata: c"]
    assert rows(list(iter_sse(chunks))) == [("message", "a", "", None), ("message", "b", "2", None)]
    buf = SSEBuffer()
    assert len(list(iter_sse(iter(chunks), buffer=buf))) == 2
    assert buf.last_event_id == "2"
    with pytest.raises(TypeError, match="not both"):
        list(iter_sse(chunks, buffer=buf, keep_raw=True))
    with pytest.raises(TypeError, match="buffer must be an SSEBuffer"):
        list(iter_sse(chunks, buffer=object()))  # type: ignore[arg-type]
    raw = list(iter_sse(chunks, keep_raw=True))
    assert raw[0].raw == "data: a\n\n"


def test_iter_sse_yields_completed_events_before_an_overflow() -> None:
    chunks = [b"data: a\n\ndata: " + b"x" * 100 + b"\n\ndata: b\n\n", b"data: never\n\n"]
    got: list[Event] = []
    with pytest.raises(SSEOverflowError) as info:
        for event in iter_sse(chunks, max_event_bytes=150):
            got.append(event)
    assert [e.data for e in got] == ["a", "b"]
    assert info.value.events == []


@pytest.mark.asyncio
async def test_aiter_sse() -> None:
    async def source() -> Any:
        for chunk in [b"data: a\r", b"\n\r\n", b"event: e\ndata: b\n\n"]:
            yield chunk

    got = [e async for e in aiter_sse(source())]
    assert rows(got) == [("message", "a", "", None), ("e", "b", "", None)]

    async def flood() -> Any:
        yield b"data: ok\n\ndata: " + b"x" * 200

    seen: list[str] = []
    with pytest.raises(SSEOverflowError):
        async for event in aiter_sse(flood(), max_event_bytes=150):
            seen.append(event.data)
    assert seen == ["ok"]


# -- the last event ID: the spec's buffer/string split -------------------------------------


def test_last_event_id_changes_only_at_a_blank_line(fast_path: bool) -> None:
    for chunks in (
        [b"id: 1\ndata: first\n\nid: 2\ndata: second\n"],
        [b"id: 1\ndata: first\n\nid", b": 2\ndata: sec", b"ond\n"],
    ):
        buf = SSEBuffer()
        events = feed_all(buf, chunks)
        assert [(e.id, e.data) for e in events] == [("1", "first")]
        # event 2 never completed: a reconnect must ask from 1, or event 2 is lost
        assert buf.last_event_id == "1"
        buf.close()
        assert buf.last_event_id == "1"
        (again,) = buf.feed(b"data: after reconnect\n\n")
        assert again.id == "1"


def test_a_blank_line_commits_the_id_even_without_data(fast_path: bool) -> None:
    buf = SSEBuffer()
    assert buf.feed(b"id: 7\n\n") == []
    assert buf.last_event_id == "7"
    (event,) = buf.feed(b"data: x\n\n")
    assert event.id == "7"


def test_an_event_dropped_for_overflow_does_not_advance_the_id() -> None:
    buf = SSEBuffer(max_event_bytes=1_000, on_overflow="skip")
    events = buf.feed(b"id: 1\ndata: ok\n\nid: 2\ndata: " + b"x" * 5_000 + b"\n\ndata: next\n\n")
    assert [(e.id, e.data) for e in events] == [("1", "ok"), ("1", "next")]
    assert buf.last_event_id == "1"
    assert buf.overflows_total == 1


def test_event_type_carried_into_an_ascii_chunk_keeps_its_byte_size() -> None:
    buf = SSEBuffer(max_event_bytes=1_000, on_overflow="skip")
    buf.feed("event: " + "\u00e9" * 300 + "\n")  # 600 bytes of UTF-8, 300 characters
    assert len(buf) >= 600
    buf.feed(b"data: " + b"a" * 100 + b"\n")  # an ASCII chunk
    assert len(buf) >= 700  # the carried type still counts 600 bytes, not 300
    buf.feed(b"data: " + b"b" * 300 + b"\n")  # over the bound now: dropped, not kept
    assert buf.overflows_total == 1
    assert len(buf) <= 1_000


def test_plain_event_class_fallback_still_dispatches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_mod, "_NewEvent", Event)  # an interpreter that refuses retagging
    for fast in (True, False):
        monkeypatch.setattr(sse_mod, "_FAST_PATH", fast)
        (event,) = SSEBuffer().feed(b"event: e\ndata: d\nid: 3\n\n")
        assert (event.event, event.data, event.id) == ("e", "d", "3")
        assert type(event) is Event
