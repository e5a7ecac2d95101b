"""SSEBuffer properties: any chunking decodes like a literal reading of the spec; bounds hold."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memscope.guard import sse as sse_mod
from memscope.guard.sse import Event, SSEBuffer, SSEOverflowError

Row = tuple[str, str, str, "int | None"]


def reference_events(stream: bytes) -> list[Row]:
    """The WHATWG event stream rules read literally, one character at a time (the oracle)."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "\r\n":
            lines.append("".join(current))
            current = []
            if char == "\r" and text[i + 1 : i + 2] == "\n":
                i += 1
        else:
            current.append(char)
        i += 1
    # ``current`` is an unterminated line: discarded at end of stream
    events: list[Row] = []
    data, event_type, last_id, retry = "", "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append((event_type or "message", data[:-1], last_id, retry))
            data, event_type, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id" and "\x00" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


def rows(events: list[Event]) -> list[Row]:
    return [(e.event, e.data, e.id, e.retry) for e in events]


# Pieces that make streams interesting: fields, every line ending, BOMs, NULs, multi-byte
# and broken UTF-8, stray colons and spaces.
PIECES = [
    b"data",
    b"data:",
    b"data: ",
    b"event:",
    b"event: e",
    b"id:",
    b"id: 1",
    b"retry:",
    b"retry: 10",
    b":",
    b" ",
    b"x",
    b"\n",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xef\xbb\xbf",
    "\u00e9\U0001f600".encode(),
    b"\xe2\x82",
    b"\xff",
    b"9",
]

soup = st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)

# line-structured streams: field, separator, value, line ending; blank lines between
line = st.tuples(
    st.sampled_from(["data", "event", "id", "retry", "", "foo", ":", "Data", " data"]),
    st.sampled_from([":", ": ", ":  ", ""]),
    st.lists(st.sampled_from(["a", "7", "\x00", " ", ":", "\u00e9", "\U0001f600"]), max_size=4).map(
        "".join
    ),
    st.sampled_from(["\n", "\r", "\r\n", "\n\n", "\r\n\r\n", "\r\r"]),
).map("".join)
structured = st.tuples(
    st.sampled_from(["", "\ufeff"]), st.lists(line, max_size=25).map("".join)
).map(lambda parts: (parts[0] + parts[1]).encode())

streams = st.one_of(soup, structured)


@st.composite
def chunked_stream(
    draw: st.DrawFn, stream_strategy: st.SearchStrategy[bytes] = streams
) -> tuple[bytes, list[bytes]]:
    stream = draw(stream_strategy)
    cuts = sorted(draw(st.sets(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: list[bytes], **kwargs: object) -> list[Event]:
    buf = SSEBuffer(**kwargs)  # type: ignore[arg-type]
    out: list[Event] = []
    for chunk in chunks:
        out += buf.feed(chunk)
    out += buf.close()
    return out


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "checked-path"])
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=chunked_stream())
def test_any_chunking_matches_the_spec(
    case: tuple[bytes, list[bytes]], fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, chunks = case
    monkeypatch.setattr(sse_mod, "_FAST_PATH", fast)
    expected = reference_events(stream)
    assert rows(decode([stream])) == expected
    assert rows(decode(chunks)) == expected


@settings(max_examples=150, deadline=None)
@given(case=chunked_stream())
def test_str_chunks_match_bytes(case: tuple[bytes, list[bytes]]) -> None:
    stream, _ = case
    text = stream.decode("utf-8", "replace")
    cut = len(text) // 2
    assert rows(decode([text[:cut], text[cut:]])) == reference_events(stream)


@settings(max_examples=150, deadline=None)
@given(case=chunked_stream())
def test_keep_raw_round_trips(case: tuple[bytes, list[bytes]]) -> None:
    _, chunks = case
    events = decode(chunks, keep_raw=True)
    for event in events:
        assert event.raw is not None and event.raw.endswith("\n\n")
        again = decode([event.raw.encode()])
        assert [(e.event, e.data, e.retry) for e in again] == [
            (event.event, event.data, event.retry)
        ]


# long lines and long events, so small limits are crossed in every way
BIG_PIECES = [*PIECES, b"data: " + b"L" * 300, b"y" * 700, b"data: ok\n\n", b"\n\n"]
big_streams = st.lists(st.sampled_from(BIG_PIECES), max_size=80).map(b"".join)


@pytest.mark.parametrize("policy", ["skip", "raise"])
@settings(max_examples=200, deadline=None)
@given(
    case=chunked_stream(big_streams),
    cap=st.integers(200, 2000),
    line_cap=st.one_of(st.none(), st.integers(1, 200)),
    keep_raw=st.booleans(),
)
def test_pending_never_exceeds_the_bound(
    case: tuple[bytes, list[bytes]], cap: int, line_cap: int | None, keep_raw: bool, policy: str
) -> None:
    stream, chunks = case
    buf = SSEBuffer(cap, max_line_bytes=line_cap, on_overflow=policy, keep_raw=keep_raw)  # type: ignore[arg-type]
    got: list[Event] = []
    for chunk in chunks:
        try:
            got += buf.feed(chunk)
        except SSEOverflowError as exc:
            assert policy == "raise"
            assert exc.limit in (cap, line_cap)
            got += exc.events
        assert len(buf) <= cap
        assert len(buf._partial) <= cap // sse_mod._PIECE_MIN_CHARS + 2
    if buf.overflows_total == 0:
        # nothing was dropped: exactly the spec's events
        assert rows(got) == reference_events(stream)
    else:
        # what was delivered is still well formed and within the limit
        assert all(len(e.data.encode()) <= cap for e in got)


# -- limits: the chunking never changes what a limited buffer decides ------------------------

# lines near the limits: long data, event, id, comment and unknown-field lines
LIMIT_PIECES = [
    *PIECES,
    b"data: " + b"L" * 150,
    b"event: " + b"E" * 90,
    b"id: " + b"4" * 120,
    b": " + b"c" * 150,
    b"foo: " + b"f" * 150,
    b"retry: " + b"7" * 110,
    b"id: 41\n",
    b"data: a\n\n",
    b"\n\n",
    b"data: " + b"m" * 60 + b"\n",
]
limit_streams = st.lists(st.sampled_from(LIMIT_PIECES), max_size=40).map(b"".join)


def decode_limited(chunks: list[bytes], **kwargs: object) -> tuple[list[Row], int, str]:
    """Events, overflows and the last event id of a limited buffer fed ``chunks``."""
    buf = SSEBuffer(**kwargs)  # type: ignore[arg-type]
    out: list[Event] = []
    for chunk in chunks:
        try:
            out += buf.feed(chunk)
        except SSEOverflowError as exc:
            out += exc.events
    out += buf.close()
    return rows(out), buf.overflows_total, buf.last_event_id


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "checked-path"])
@pytest.mark.parametrize("policy", ["skip", "raise"])
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=chunked_stream(limit_streams),
    cap=st.integers(60, 600),
    line_cap=st.one_of(st.none(), st.integers(1, 200)),
    keep_raw=st.booleans(),
)
def test_any_chunking_gives_the_same_verdicts_under_limits(
    case: tuple[bytes, list[bytes]],
    cap: int,
    line_cap: int | None,
    keep_raw: bool,
    policy: str,
    fast: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream, chunks = case
    monkeypatch.setattr(sse_mod, "_FAST_PATH", fast)
    line_cap = min(line_cap, cap) if line_cap is not None else None
    kwargs = {
        "max_event_bytes": cap,
        "max_line_bytes": line_cap,
        "keep_raw": keep_raw,
        "on_overflow": policy,
    }
    whole = decode_limited([stream], **kwargs)
    assert decode_limited(chunks, **kwargs) == whole
    # one byte at a time: every boundary at once
    assert decode_limited([stream[i : i + 1] for i in range(len(stream))], **kwargs) == whole


def test_a_dropped_events_id_is_not_committed_whatever_the_chunking() -> None:
    stream = b"id: 41\ndata: a\n\nid: 42\ndata: " + b"x" * 150 + b"\n\ndata: b\n\n"
    for cut in range(len(stream) + 1):
        buf = SSEBuffer(1000, max_line_bytes=100, on_overflow="skip")
        events = buf.feed(stream[:cut]) + buf.feed(stream[cut:])
        assert [(e.data, e.id) for e in events] == [("a", "41"), ("b", "41")], cut
        assert buf.last_event_id == "41", cut  # a reconnect must not skip event 42


def test_a_long_comment_after_a_near_full_event_is_not_an_overflow() -> None:
    stream = b"data: " + b"d" * 100 + b"\n: " + b"c" * 150 + b"\nfoo: " + b"f" * 150 + b"\n\n"
    for cut in range(len(stream) + 1):
        buf = SSEBuffer(200, on_overflow="skip")
        events = buf.feed(stream[:cut]) + buf.feed(stream[cut:])
        assert [len(e.data) for e in events] == [100], cut
        assert buf.overflows_total == 0, cut
