"""A bounded, linear, spec-exact Server-Sent Events decoder.

:class:`SSEBuffer` follows the WHATWG HTML "event stream interpretation" rules,
keeps at most ``max_event_bytes`` pending for the event being assembled, and scans
every input character once. See ``docs/guard.md`` (SSEBuffer) for the conformance notes.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from .._base.validate import check_bool, check_choice, check_int, check_str
from ._naming import register, site_name

__all__ = ["Event", "SSEBuffer", "SSEOverflowError", "aiter_sse", "iter_sse"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
# Counted for every line the buffer keeps (a data line, or any line with keep_raw):
# a list slot plus a str header is ~57 bytes on 64-bit CPython, so a flood of
# "data:\n" lines is charged for the memory it really takes.
LINE_OVERHEAD_BYTES = 64
# Pieces of a partial line shorter than this are merged, so a line trickling in
# one byte at a time is held as few large strings, not millions of tiny ones.
_PIECE_MIN_CHARS = 1024
_REPR_CHARS = 60
# Tests switch this off to run every chunk through the fully checked loop.
_FAST_PATH = True

OverflowPolicy = Literal["raise", "skip"]


def _utf8_len(text: str) -> int:
    # surrogatepass: a str fed directly may hold lone surrogates; they still take room
    return len(text.encode("utf-8", "surrogatepass"))


def _total_size(pieces: list[str], size: Any) -> int:
    if size is len:
        return sum(map(len, pieces))
    return _utf8_len("".join(pieces))


def _clip(text: str | None) -> str:
    # not units.clip: a field is shown as its repr and says how much was cut, which
    # matters when the cut part is megabytes of event data
    if text is None or len(text) <= _REPR_CHARS:
        return repr(text)
    return f"{text[:_REPR_CHARS]!r}...(+{len(text) - _REPR_CHARS} chars)"


@dataclass(frozen=True, slots=True, repr=False)
class Event:
    """One dispatched SSE event: type, data, last event id, retry and optionally its raw text."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None
    raw: str | None = field(default=None, compare=True)

    def __repr__(self) -> str:
        # bounded: an event can be megabytes and reprs end up in logs
        return (
            f"Event(event={_clip(self.event)}, data={_clip(self.data)}, id={_clip(self.id)}, "
            f"retry={self.retry!r}, raw={_clip(self.raw)})"
        )


class _EventBuilder:
    """Same slot layout as Event, without the frozen __setattr__ (see _fast_events)."""

    __slots__ = ("event", "data", "id", "retry", "raw")  # noqa: RUF023 - Event's order


_new_builder = object.__new__


def _retagged(event: str, data: str, id: str, retry: int | None, raw: str | None) -> Event:
    """An Event built as an _EventBuilder, then retagged (see _fast_events)."""
    # object.__new__ and slot stores, not _EventBuilder(...): a Python __init__ entered
    # from type.__call__ costs as much as this whole function called from the loop
    built: Any = _new_builder(_EventBuilder)
    built.event = event
    built.data = data
    built.id = id
    built.retry = retry
    built.raw = raw
    built.__class__ = Event
    return cast(Event, built)


def _fast_events() -> Callable[[str, str, str, int | None, str | None], Event]:
    """What the decoder builds events with: _retagged if retagging works, else Event.

    A frozen dataclass sets each field through object.__setattr__, which was half the
    decoding time of a typical LLM stream; building a plain slotted object and then
    setting its ``__class__`` to the (layout-identical) Event is 4x cheaper and yields
    a genuine frozen Event.
    """
    try:
        if _retagged("message", "", "", None, None) != Event():
            return Event
    except TypeError:  # an interpreter that refuses the retagging
        return Event
    if Event.__slots__ != _EventBuilder.__slots__:
        return Event
    return _retagged


_NewEvent = _fast_events()


def _complete(
    etype: str, data: list[str], last_id: str, retry: int | None, raw: list[str] | None
) -> Event:
    """The event a blank line dispatches, from the block's fields; both loops call it."""
    return _NewEvent(
        etype or "message",
        "\n".join(data) if len(data) > 1 else data[0],
        last_id,
        retry,
        "\n".join(raw) + "\n\n" if raw is not None else None,
    )


# field names whose value a line keeps; any other field, or a comment, is ignored whole
_USED_FIELDS = ("data", "event", "id", "retry")


def _drop_ignored(partial: list[str]) -> None:
    """Hold a partial line that will be ignored as one marker character, not its text.

    A comment or unknown field can be as long as max_line_bytes and costs the event
    nothing, so it must not hold memory either; the marker keeps what the line is.
    """
    head = partial[0]
    if head[0] == ":":
        marker = ":"  # a comment (counted as one when it ends)
    else:
        name, colon, _ = head.partition(":")
        if (name in _USED_FIELDS) if colon else any(f.startswith(name) for f in _USED_FIELDS):
            return
        marker = "\x00"  # no field starts with NUL: still an ignored field when joined
    if len(partial) > 1 or head != marker:
        partial[:] = [marker]


class SSEOverflowError(Exception):
    """An event or line passed the buffer's limit; ``events`` holds those completed in the call."""

    def __init__(
        self,
        message: str,
        *,
        limit_name: str,
        limit: int,
        size: int,
        events: list[Event] | None = None,
        overflows: int = 1,
    ) -> None:
        super().__init__(message)
        self.limit_name = limit_name
        self.limit = limit
        self.size = size
        self.events: list[Event] = events if events is not None else []
        self.overflows = overflows


class SSEBuffer:
    """Incremental SSE decoder whose pending memory never passes ``max_event_bytes``.

    Not thread-safe: one buffer decodes one stream, fed by one consumer.
    """

    __slots__ = (
        "__weakref__",
        "_data",
        "_decoder",
        "_doomed",
        "_etype",
        "_etype_size",
        "_first_overflow",
        "_id_buffer",
        "_partial",
        "_partial_ascii",
        "_partial_size",
        "_pending",
        "_raw",
        "_resync",
        "_resync_bol",
        "_retry_block",
        "_skip_lf",
        "_started",
        "bytes_total",
        "comments_total",
        "events_total",
        "keep_raw",
        "last_event_id",
        "max_event_bytes",
        "max_line_bytes",
        "name",
        "on_overflow",
        "overflows_total",
        "retry",
    )

    def __init__(
        self,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        *,
        max_line_bytes: int | None = None,
        on_overflow: OverflowPolicy = "raise",
        keep_raw: bool = False,
        name: str | None = None,
    ) -> None:
        max_event_bytes = check_int("max_event_bytes", max_event_bytes, low=1, unit="bytes")
        if max_line_bytes is None:
            max_line_bytes = max_event_bytes
        max_line_bytes = check_int("max_line_bytes", max_line_bytes, low=1, unit="bytes")
        if max_line_bytes > max_event_bytes:
            raise ValueError(
                f"max_line_bytes ({max_line_bytes}) must be <= max_event_bytes "
                f"({max_event_bytes}): a line is part of an event"
            )
        check_choice("on_overflow", on_overflow, ("raise", "skip"))
        check_bool("keep_raw", keep_raw)
        check_str("name", name, optional=True)
        self.max_event_bytes = max_event_bytes
        self.max_line_bytes = max_line_bytes
        self.on_overflow: OverflowPolicy = on_overflow
        self.keep_raw = keep_raw
        #: the last event ID seen (persists across events and close(), as for a reconnect)
        self.last_event_id = ""
        #: the last reconnection time in milliseconds a ``retry`` field set, or None
        self.retry: int | None = None
        self.events_total = 0
        self.bytes_total = 0
        self.overflows_total = 0
        self.comments_total = 0
        self._first_overflow: tuple[str, int, int] | None = None
        self._reset_stream()
        # unnamed, it is named after the line that made it (iter_sse's caller's, for one
        # iter_sse makes): stable across processes
        self.name = register(self, "SSEBuffer", name)

    # -- state -----------------------------------------------------------------

    def _reset_stream(self) -> None:
        # a new stream starts from the last id actually committed (the reconnect's
        # Last-Event-ID), not from an id line whose event never completed
        self._id_buffer = self.last_event_id
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._started = False
        self._skip_lf = False
        self._resync = False
        self._resync_bol = False
        self._partial: list[str] = []
        self._partial_size = 0
        self._partial_ascii = True
        # the partial line will overflow the event when it ends (it holds no text then)
        self._doomed = False
        self._reset_block()

    def _reset_block(self) -> None:
        self._data: list[str] = []
        self._etype = ""
        self._etype_size = 0
        self._retry_block: int | None = None
        self._raw: list[str] | None = [] if self.keep_raw else None
        self._pending = 0

    def __len__(self) -> int:
        """Bytes pending for the event being assembled (data, event type, raw, partial line)."""
        return self._pending + self._partial_held()

    def __repr__(self) -> str:
        return (
            f"<SSEBuffer name={self.name!r} pending={len(self)} "
            f"max_event_bytes={self.max_event_bytes} on_overflow={self.on_overflow!r} "
            f"events_total={self.events_total} overflows_total={self.overflows_total}>"
        )

    def stats(self) -> dict[str, int]:
        """Counters and the pending size, as a dict of ints."""
        return {
            "events_total": self.events_total,
            "bytes_total": self.bytes_total,
            "overflows_total": self.overflows_total,
            "comments_total": self.comments_total,
            "pending_bytes": len(self),
            "max_event_bytes": self.max_event_bytes,
            "max_line_bytes": self.max_line_bytes,
        }

    def memscope_stats(self) -> dict[str, Any]:
        """Statistics for memscope's ``tracked`` section; ``size_bytes`` is the pending size."""
        out: dict[str, Any] = self.stats()
        out["size_bytes"] = out.pop("pending_bytes")
        out["on_overflow"] = self.on_overflow
        return out

    # -- input -----------------------------------------------------------------

    def feed(self, chunk: bytes | bytearray | memoryview | str) -> list[Event]:
        """Decode ``chunk``; return the events it completed (SSEOverflowError per policy)."""
        if isinstance(chunk, str):
            # a str after bytes ends any half-received UTF-8 character, as the decoder would
            tail = self._decoder.decode(b"", True)
            text = tail + chunk if tail else chunk
            self._decoder.reset()
            self.bytes_total += len(chunk) if chunk.isascii() else _utf8_len(chunk)
        elif isinstance(chunk, (bytes, bytearray, memoryview)):
            self.bytes_total += len(chunk) if not isinstance(chunk, memoryview) else chunk.nbytes
            text = self._decoder.decode(chunk)
        else:
            raise TypeError(
                f"chunk must be bytes, bytearray, memoryview or str, got {type(chunk).__name__}"
            )
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":  # one BOM, only at the very start of the stream
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            # the previous chunk ended in CR and its line is done: a LF here is its CRLF half
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            trailing_cr = text[-1] == "\r"
            self._skip_lf = trailing_cr
            if not self._resync:
                # CRLF-only text (the common case) splits in one pass: every CR and LF
                # then belongs to a CRLF pair, except a chunk-final CR (a line end too)
                lines = text.split("\r\n")
                pairs = len(lines) - 1
                if text.count("\r") + text.count("\n") == 2 * pairs + trailing_cr:
                    if trailing_cr:
                        lines[-1] = lines[-1][:-1]
                        lines.append("")
                    return self._process(text, lines)
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                text = text.replace("\r", "\n")
        return self._process(text)

    def flush(self) -> list[Event]:
        """End the current event now (as if a blank line arrived); keeps the stream going.

        Not part of the spec: for upstreams that end a stream without the final blank
        line, or for framing where the transport already delimits events.
        """
        tail = self._decoder.decode(b"", True)  # a half-received character becomes U+FFFD
        self._decoder.reset()
        return self._process(tail + "\n\n")

    def close(self) -> list[Event]:
        """End of stream per spec: an unfinished event is dropped; returns [] and resets.

        The buffer is then ready for a new stream (a reconnect): ``last_event_id``,
        ``retry`` and the counters are kept, everything else starts fresh.
        """
        # Per spec, an event is only dispatched by a blank line, and a line ending at a
        # chunk-final CR was dispatched already, so nothing is completable at EOF.
        self._reset_stream()
        return []

    # -- the decoder -----------------------------------------------------------

    def _overflow(self, limit_name: str, limit: int, size: int) -> None:
        self.overflows_total += 1
        if self._first_overflow is None:
            self._first_overflow = (limit_name, limit, size)

    def _raise_if_overflowed(self, events: list[Event], overflows: int) -> None:
        first = self._first_overflow
        self._first_overflow = None
        if first is None or self.on_overflow != "raise":
            return
        limit_name, limit, size = first
        what = "line" if limit_name == "max_line_bytes" else "event"
        raise SSEOverflowError(
            f"SSE {what} exceeds {limit_name}={limit} (reached {size} bytes); it was dropped "
            "and the buffer skips to the next blank line",
            limit_name=limit_name,
            limit=limit,
            size=size,
            events=events,
            overflows=overflows,
        )

    def _process(self, text: str, lines: list[str] | None = None) -> list[Event]:
        """Decode LF-only ``text``, or ``lines`` already split from it; scanned once."""
        events: list[Event] = []
        overflows_before = self.overflows_total
        if self._resync:
            if self._resync_bol and text[0] == "\n":
                start = 1
            else:
                found = text.find("\n\n")
                if found < 0:
                    self._resync_bol = text[-1] == "\n"
                    return events
                start = found + 2
            self._resync = False
            text = text[start:]
            if not text:
                return events
        ascii_ = text.isascii() and self._partial_ascii
        size = len if ascii_ else _utf8_len
        if lines is None:
            lines = text.split("\n")
        last = lines.pop()
        if lines:
            it = iter(lines)
            partial_size = self._partial_size
            if self._partial:
                first_size = partial_size + size(lines[0])
                doomed = self._doomed
                if doomed:
                    self._partial_size = first_size
                    reached = self._pending + self._partial_charge()
                else:
                    self._partial.append(lines[0])
                    lines[0] = "".join(self._partial)
                self._partial = []
                self._partial_size = 0
                self._partial_ascii = True
                self._doomed = False
                if first_size > self.max_line_bytes or doomed:
                    if first_size > self.max_line_bytes:
                        self._overflow("max_line_bytes", self.max_line_bytes, first_size)
                    else:
                        self._overflow("max_event_bytes", self.max_event_bytes, reached)
                    self._reset_block()
                    # as in the loops: a dropped event never advances the id, or the
                    # next blank line would commit it (and a reconnect skip the event)
                    self._id_buffer = self.last_event_id
                    next(it)
                    self._skip_to_blank(it)
            # a line of this chunk is at most the chunk long (<= 4 bytes a character), so
            # the per-line length check is needed only for chunks larger than the limit
            text_bytes = len(text) if ascii_ else 4 * len(text)
            check_lines = text_bytes > self.max_line_bytes
            # Most chunks cannot reach the limit whatever they hold: decode those without
            # per-line accounting and size only the event still open at the end.
            worst = (partial_size + text_bytes + (LINE_OVERHEAD_BYTES + 1) * len(lines)) * (
                2 if self.keep_raw else 1
            )
            if _FAST_PATH and not check_lines and self._pending + worst <= self.max_event_bytes:
                self._run_fast(it, events, size)
            else:
                self._run(it, events, size, check_lines)
            if self._resync and last:
                self._resync_bol = False  # the skipped region ends mid-line
                last = ""
            self.events_total += len(events)  # all dispatched by the loop just run
        if last:
            self._stash(last, size(last), ascii_)
        self._raise_if_overflowed(events, self.overflows_total - overflows_before)
        return events

    def _skip_to_blank(self, it: Iterator[str]) -> None:
        """Consume lines up to a blank one; without one, skip on into the next chunks."""
        for line in it:
            if not line:
                return
        self._resync = True
        self._resync_bol = True

    def _partial_charge(self) -> int:
        """The least the partial line will add to the event however it ends (0: nothing).

        The loops charge a complete line so (data: its value plus overhead; event: its
        value less the type it replaces; with keep_raw the raw line too; comments, ids,
        retries and unknown fields nothing), and each charge only grows with the line,
        so a partial line overflows exactly when the complete line would.
        """
        line_size = self._partial_size
        charge = line_size + LINE_OVERHEAD_BYTES + 1 if self._raw is not None else 0
        head = self._partial[0]  # at least 1 KiB of the line, or all of it: the field name
        if head.startswith("data:"):
            charge += line_size - (6 if head[5:6] == " " else 5) + LINE_OVERHEAD_BYTES + 1
        elif head.startswith("event:"):
            charge += line_size - (7 if head[6:7] == " " else 6) - self._etype_size
        return charge

    def _partial_held(self) -> int:
        """The partial line's bytes in len(): what it charges the event, at most its size."""
        if not self._partial or self._doomed:
            return 0
        return max(0, min(self._partial_size, self._partial_charge()))

    def _stash(self, piece: str, piece_size: int, ascii_: bool) -> None:
        partial = self._partial
        if self._doomed:  # only its length matters now (see below)
            self._partial_size += piece_size
            if self._partial_size > self.max_line_bytes:
                self._overflow("max_line_bytes", self.max_line_bytes, self._partial_size)
                self._drop_partial()
            return
        if partial and len(partial[-1]) < _PIECE_MIN_CHARS:
            partial[-1] += piece  # copies under 1 KiB more than the piece: still linear
        else:
            partial.append(piece)
        self._partial_size += piece_size
        self._partial_ascii = self._partial_ascii and ascii_
        line_size = self._partial_size
        if line_size > self.max_line_bytes:
            self._overflow("max_line_bytes", self.max_line_bytes, line_size)
        elif (
            # the charge is at most twice the line plus two overheads: most chunks end
            # far from the limit and skip the exact count
            self._pending + 2 * (line_size + LINE_OVERHEAD_BYTES + 1) > self.max_event_bytes
            and self._pending + self._partial_charge() > self.max_event_bytes
        ):
            # certain to overflow once the line ends, but which limit it passes depends
            # on its final length (as for a line fed whole): hold no text until then
            self._doomed = True
            partial[:] = [partial[0][:7]]  # the field name is all _partial_charge reads
            return
        else:
            if self._raw is None and line_size > _PIECE_MIN_CHARS:  # small ones: no matter
                _drop_ignored(partial)
            return
        self._drop_partial()

    def _drop_partial(self) -> None:
        """Drop the event and the partial line after an overflow; skip to a blank line."""
        self._doomed = False
        self._reset_block()
        self._id_buffer = self.last_event_id  # a dropped event never advances the id
        self._partial = []
        self._partial_size = 0
        self._partial_ascii = True
        self._resync = True
        self._resync_bol = False

    # The two loops below differ only in the per-line accounting, and stay two: one loop
    # with the accounting behind flags decodes 5-8% slower on the unaccounted path (the
    # one nearly every chunk takes). Everything per event or per chunk is shared.

    def _run_fast(self, it: Iterator[str], events: list[Event], size: Any) -> None:
        """Interpret complete lines that cannot overflow; _run with the accounting left out."""
        data = self._data
        raw = self._raw
        etype = self._etype
        retry_block = self._retry_block
        last_id = self._id_buffer  # the spec's last event ID buffer
        committed = self.last_event_id  # the last event ID string: set at each blank line
        kept_data = len(data)
        kept_raw = len(raw) if raw is not None else 0
        block_ended = False
        comments = 0
        for line in it:
            if not line:
                committed = last_id
                if data:
                    events.append(_complete(etype, data, last_id, retry_block, raw))
                    data = []
                if raw:
                    raw = []
                etype = ""
                retry_block = None
                block_ended = True
                continue
            if raw is not None:
                raw.append(line)
            if line.startswith("data:"):
                data.append(line[6:] if line[5:6] == " " else line[5:])
            elif line[0] == ":":
                comments += 1
            else:
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "event":
                    etype = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    if "\x00" not in value:
                        last_id = value
                elif name == "retry":
                    retry_block = self._retry_field(value, retry_block)
        # size the block still open: only lines of this chunk are new to it
        if block_ended:
            kept_data = kept_raw = 0
            pending = 0
        else:
            pending = self._pending - self._etype_size
        overhead = LINE_OVERHEAD_BYTES + 1
        if len(data) > kept_data:
            new = data[kept_data:] if kept_data else data
            pending += _total_size(new, size) + overhead * len(new)
        if raw is not None and len(raw) > kept_raw:
            new = raw[kept_raw:] if kept_raw else raw
            pending += _total_size(new, size) + overhead * len(new)
        # an event type carried over from an earlier chunk keeps its size: this chunk's
        # size function counts characters when the chunk is ASCII, the type may not be
        etype_size = self._etype_size if etype is self._etype else (size(etype) if etype else 0)
        pending += etype_size
        self._keep(data, raw, etype, etype_size, retry_block, last_id, committed, pending)
        self.comments_total += comments

    def _run(self, it: Iterator[str], events: list[Event], size: Any, check_lines: bool) -> None:
        """Interpret complete lines; the hot loop, so state lives in locals meanwhile."""
        data = self._data
        raw = self._raw
        etype = self._etype
        etype_size = self._etype_size
        retry_block = self._retry_block
        last_id = self._id_buffer
        committed = self.last_event_id
        pending = self._pending
        cap = self.max_event_bytes
        max_line = self.max_line_bytes
        overhead = LINE_OVERHEAD_BYTES + 1  # the line's LF is kept too
        comments = 0
        for line in it:
            if not line:
                committed = last_id
                if data:
                    events.append(_complete(etype, data, last_id, retry_block, raw))
                    data = []
                if raw:
                    raw = []
                etype = ""
                etype_size = 0
                retry_block = None
                pending = 0
                continue
            if check_lines and (line_size := size(line)) > max_line:
                limit_name, limit, reached = "max_line_bytes", max_line, line_size
            else:
                if raw is not None:
                    raw.append(line)
                    pending += size(line) + overhead
                if line.startswith("data:"):
                    value = line[6:] if line[5:6] == " " else line[5:]
                    data.append(value)
                    pending += size(value) + overhead
                elif line[0] == ":":
                    comments += 1
                else:
                    name, _, value = line.partition(":")
                    if value[:1] == " ":
                        value = value[1:]
                    if name == "event":
                        new_size = size(value)
                        pending += new_size - etype_size
                        etype = value
                        etype_size = new_size
                    elif name == "data":  # "data" without a colon: an empty data line
                        data.append(value)
                        pending += size(value) + overhead
                    elif name == "id":
                        if "\x00" not in value:
                            last_id = value
                    elif name == "retry":
                        retry_block = self._retry_field(value, retry_block)
                if pending <= cap:
                    continue
                limit_name, limit, reached = "max_event_bytes", cap, pending
            # overflow: drop the event and skip to the next blank line; a dropped event
            # never advances the last event id
            self._overflow(limit_name, limit, reached)
            last_id = committed
            data = []
            raw = [] if raw is not None else None
            etype = ""
            etype_size = 0
            retry_block = None
            pending = 0
            self._skip_to_blank(it)
        self._keep(data, raw, etype, etype_size, retry_block, last_id, committed, pending)
        self.comments_total += comments

    def _retry_field(self, value: str, retry_block: int | None) -> int | None:
        """The block's retry after a ``retry`` field; a valid one sets ``self.retry`` too."""
        if value.isascii() and value.isdigit():
            # more digits than int() accepts (sys.get_int_max_str_digits): ignored
            with contextlib.suppress(ValueError):
                retry_block = self.retry = int(value)
        return retry_block

    def _keep(
        self,
        data: list[str],
        raw: list[str] | None,
        etype: str,
        etype_size: int,
        retry_block: int | None,
        last_id: str,
        committed: str,
        pending: int,
    ) -> None:
        """Store the block still open and the id state where a loop left them."""
        self._data = data
        self._raw = raw
        self._etype = etype
        self._etype_size = etype_size
        self._retry_block = retry_block
        self._id_buffer = last_id
        self.last_event_id = committed
        self._pending = pending


def iter_sse(
    chunks: Iterable[bytes | bytearray | memoryview | str],
    *,
    buffer: SSEBuffer | None = None,
    **buffer_kwargs: Any,
) -> Iterator[Event]:
    """Yield events from an iterable of chunks (e.g. ``response.iter_bytes()``)."""
    buf = _make_buffer(buffer, buffer_kwargs)
    for chunk in chunks:
        try:
            events = buf.feed(chunk)
        except SSEOverflowError as exc:
            # the events completed alongside the overflow come first, then the error
            yield from exc.events
            exc.events = []
            raise
        yield from events
    yield from buf.close()


async def aiter_sse(
    chunks: AsyncIterable[bytes | bytearray | memoryview | str],
    *,
    buffer: SSEBuffer | None = None,
    **buffer_kwargs: Any,
) -> AsyncIterator[Event]:
    """Yield events from an async iterable of chunks (httpx ``aiter_bytes()``, aiohttp)."""
    buf = _make_buffer(buffer, buffer_kwargs)
    async for chunk in chunks:
        try:
            events = buf.feed(chunk)
        except SSEOverflowError as exc:
            for event in exc.events:
                yield event
            exc.events = []
            raise
        for event in events:
            yield event
    for event in buf.close():
        yield event


def _make_buffer(buffer: SSEBuffer | None, kwargs: dict[str, Any]) -> SSEBuffer:
    if buffer is None:
        if kwargs.get("name") is None:
            # the user's line drives the stream but assigns no buffer: name it by the line
            kwargs = {**kwargs, "name": site_name("SSEBuffer")}
        return SSEBuffer(**kwargs)
    if not isinstance(buffer, SSEBuffer):
        raise TypeError(f"buffer must be an SSEBuffer or None, got {type(buffer).__name__}")
    if kwargs:
        raise TypeError(
            f"pass either buffer= or SSEBuffer arguments, not both (got {sorted(kwargs)})"
        )
    return buffer
