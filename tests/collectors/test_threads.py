"""The threads collector: real threads, counted and described, rows bounded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

import memscope
from memscope.collectors.threads import ThreadsCollector, ThreadsSection


@pytest.fixture
def workers() -> Iterator[list[threading.Thread]]:
    """Five real threads (two daemon) that wait until the test is done."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=stop.wait, name=f"threads-test-{i}", daemon=i < 2) for i in range(5)
    ]
    for t in threads:
        t.start()
    yield threads
    stop.set()
    for t in threads:
        t.join(timeout=10)


def test_counts_and_rows_of_real_threads(workers: list[threading.Thread]) -> None:
    data = ThreadsCollector().collect()
    assert data["count"] == threading.active_count()
    assert data["daemon"] == sum(t.daemon for t in threading.enumerate())
    rows = {r["name"]: r for r in data["threads"]}
    for t in workers:
        r = rows[t.name]
        assert r == {
            "name": t.name,
            "ident": t.ident,
            "daemon": t.daemon,
            "alive": True,
            "native_id": t.native_id,
        }
    assert rows["MainThread"]["daemon"] is False


def test_finished_threads_disappear(workers: list[threading.Thread]) -> None:
    before = ThreadsCollector().collect()
    done = threading.Thread(target=lambda: None, name="threads-test-short")
    done.start()
    done.join()
    after = ThreadsCollector().collect()
    assert after["count"] == before["count"]
    assert "threads-test-short" not in {r["name"] for r in after["threads"]}


def test_rows_bounded_counts_complete(workers: list[threading.Thread]) -> None:
    data = ThreadsCollector(max_rows=2).collect()
    assert len(data["threads"]) == 2
    assert data["count"] >= 6
    lines = ThreadsSection(data).summary_lines()
    assert lines[0] == f"{data['count']} threads ({data['daemon']} daemon)"
    assert lines[-1] == f"(rows cut at 2 of {data['count']})"


def test_round_trip_compare_and_summary(workers: list[threading.Thread]) -> None:
    a = memscope.snapshot(label="a", collectors=["threads"])
    extra = threading.Event()
    t = threading.Thread(target=extra.wait, name="threads-test-extra")
    t.start()
    try:
        b = memscope.snapshot(label="b", collectors=["threads"])
    finally:
        extra.set()
        t.join(timeout=10)
    section = b["threads"]
    assert isinstance(section, ThreadsSection)
    json.dumps(b.to_dict())
    assert memscope.Snapshot.from_json(b.to_json()) == b
    diff = memscope.compare(a, b)
    assert not diff.errors
    assert diff.delta("threads", "count") == 1
    lines = section.summary_lines()
    assert 1 <= len(lines) <= 6
    assert "threads-test-extra" in lines[1]
    assert "threads-test-N x5" in lines[1]  # numbered names grouped, as a pool's would be
    assert diff.delta("threads", "by_name[threads-test-extra].count") == 1


@pytest.mark.parametrize(("rows", "error"), [(-1, ValueError), (1.5, TypeError), (None, TypeError)])
def test_bad_max_rows_is_named(rows: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_rows"):
        ThreadsCollector(max_rows=rows)  # type: ignore[arg-type]
