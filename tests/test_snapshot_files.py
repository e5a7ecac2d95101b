"""Whatever loads from a snapshot file renders, compares and saves again; whatever cannot is
refused at load with file:line. Bad arguments are refused at the call, naming them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import memscope


def good_line() -> dict[str, Any]:
    return memscope.snapshot(label="g", collectors=["gc", "threads"]).to_dict()


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "s.jsonl"
    path.write_bytes(json.dumps(good_line()).encode() + b"\n" + data + b"\n")
    return path


def nested(depth: int) -> bytes:
    body = good_line()
    text = json.dumps(body)
    return text[:-1].encode() + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (nested(100_000), "nested too deeply"),
        (b'{"schema": 1, "label": "\xff\xfe"}', "not UTF-8"),
        (json.dumps({**good_line(), "timestamp": 1.0}).encode().replace(b"1.0", b"NaN", 1), "NaN"),
        (json.dumps({**good_line(), "timestamp": 1e300}).encode(), "timestamp"),
        (json.dumps({**good_line(), "timestamp": -1e18}).encode(), "timestamp"),
        (
            json.dumps({**good_line(), "sections": {"gc": {"collected_total": 10**400}}}).encode(),
            "digits",
        ),
        (json.dumps({**good_line(), "pid": "12"}).encode(), "pid"),
    ],
    ids=["deep", "not-utf8", "nan", "far-future", "before-1970", "huge-int", "pid-str"],
)
def test_bad_lines_are_refused_with_file_and_line(tmp_path: Path, line: bytes, says: str) -> None:
    path = write(tmp_path, line)
    with pytest.raises(ValueError, match=f"s.jsonl:2: not a snapshot: .*{says}") as info:
        memscope.load(path)
    assert type(info.value) is ValueError


def test_what_loads_renders_compares_and_saves_again(tmp_path: Path) -> None:
    big = {**good_line(), "sections": {"gc": {"collected_total": 10**29, "pause_seconds": 1e308}}}
    small = {
        **good_line(),
        "sections": {"gc": {"collected_total": -(10**29), "pause_seconds": -1e308}},
    }
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(small) + "\n" + json.dumps(big) + "\n")
    a, b = memscope.load(path)
    assert str(a) and str(b)
    text = str(memscope.compare(a, b))  # an infinite delta renders, it does not raise
    assert "gc: pause_seconds" in text
    memscope.save([a, b], tmp_path / "again.jsonl")
    assert memscope.load(tmp_path / "again.jsonl") == [a, b]


def test_a_truncated_last_line_is_still_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        json.dumps(good_line()).encode() + b"\n" + json.dumps(good_line()).encode()[:50]
    )
    assert len(memscope.load(path)) == 1


def test_streams_still_load() -> None:
    stream = io.StringIO(json.dumps(good_line()) + "\n")
    assert len(memscope.load(stream)) == 1


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda: memscope.snapshot(collectors=5), TypeError, "collectors must be a list"),
        (lambda: memscope.snapshot(collectors=[5]), TypeError, "collectors must hold"),
        (lambda: memscope.snapshot(deep="no"), TypeError, "deep must be True or False"),
        (lambda: memscope.save(5, "x.jsonl"), TypeError, "snapshots must be a Snapshot"),
        (lambda: memscope.save([], 5), TypeError, "path must be a file path"),
        (lambda: memscope.load(123), TypeError, "source must be a file path or an open text"),
        (lambda: memscope.iter_load(123), TypeError, "source must be"),
        (lambda: memscope.snapshot(collectors=["gc"]).report(top=-1), ValueError, "top must be"),
    ],
    ids=["collectors-int", "collectors-item", "deep", "save", "save-path", "load", "iter", "top"],
)
def test_bad_arguments_are_refused_at_the_call(
    call: Any, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        call()
