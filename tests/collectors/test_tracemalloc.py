"""The tracemalloc collector: a real allocation at a known line shows up and diffs by site."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator

import pytest

import memscope
from memscope import CollectorUnavailable
from memscope.collectors.tracing import (
    TracemallocCollector,
    TracemallocSection,
    start_tracing,
    stop_tracing,
)


def allocate(n: int) -> list[str]:
    return [f"item-{i:08d}-" * 4 for i in range(n)]


SITE = f"{allocate.__code__.co_filename}:{allocate.__code__.co_firstlineno + 1}"
PACKAGE_DIR = os.path.dirname(memscope.__file__)


@pytest.fixture(autouse=True)
def no_tracing_left() -> Iterator[None]:
    """Every test starts and ends with tracemalloc off."""
    stop_tracing()
    yield
    stop_tracing()


def row_for(data: dict[str, object], site: str) -> dict[str, object]:
    rows = data["top"]
    assert isinstance(rows, list)
    for row in rows:
        if row["site"] == site:
            return row  # type: ignore[no-any-return]
    raise AssertionError(f"{site} not in top: {[r['site'] for r in rows]}")


def test_unavailable_when_not_tracing() -> None:
    with pytest.raises(CollectorUnavailable, match=r"call memscope\.start_tracing\(\)"):
        TracemallocCollector().collect()
    snap = memscope.snapshot(collectors=["tracemalloc"])
    assert "tracemalloc" not in snap.sections
    assert snap.errors["tracemalloc"].startswith("unavailable: tracemalloc is not tracing")
    assert "tracemalloc" not in memscope.snapshot().collectors  # cost "trace": not by default


def test_known_site_in_top_with_totals() -> None:
    start_tracing()
    kept = allocate(20_000)
    data = TracemallocCollector().collect()
    assert data["tracing"] is True and data["frames"] == 1
    row = row_for(data, SITE)
    assert row["count"] >= 20_000  # type: ignore[operator]
    assert row["size_bytes"] >= 20_000 * 80  # type: ignore[operator]
    assert "traceback" not in row  # one frame: the site says it all
    assert data["current_bytes"] >= row["size_bytes"]  # type: ignore[operator]
    assert data["peak_bytes"] >= data["current_bytes"]  # type: ignore[operator]
    assert data["overhead_bytes"] > 0  # type: ignore[operator]
    assert data["top"][0]["site"] == SITE  # type: ignore[index]
    del kept


def test_traceback_when_more_frames_are_kept() -> None:
    start_tracing(frames=4)
    kept = allocate(5_000)
    data = TracemallocCollector().collect()
    row = row_for(data, SITE)
    tb = row["traceback"]
    assert isinstance(tb, list) and 2 <= len(tb) <= 4
    assert tb[-1] == SITE  # most recent call last
    assert any(frame.startswith(__file__ + ":") and frame != SITE for frame in tb[:-1])
    del kept


def test_memscope_and_import_frames_are_excluded() -> None:
    start_tracing()
    import email.mime.text
    import importlib

    importlib.reload(email.mime.text)  # an import allocates through importlib's frames
    held = memscope.snapshot(collectors=["process", "gc", "threads"])  # memscope allocates
    raw = {t.traceback[-1].filename for t in tracemalloc.take_snapshot().traces}
    # the filters have something to remove: otherwise this test would prove nothing
    assert any(f.startswith(PACKAGE_DIR + os.sep) for f in raw)
    assert any(f.startswith("<frozen importlib._bootstrap") for f in raw)
    data = TracemallocCollector(top=1000).collect()
    # fewer sites than rows kept, so top holds every site
    assert data["sites"] <= 1000  # type: ignore[operator]
    for row in data["top"]:  # type: ignore[attr-defined]
        site = row["site"]
        assert not site.startswith(PACKAGE_DIR + os.sep), site
        assert "<frozen importlib._bootstrap" not in site
        assert not site.startswith(tracemalloc.__file__)
    del held


def test_compare_shows_growth_of_the_site() -> None:
    start_tracing()
    kept = allocate(1_000)
    a = memscope.snapshot(label="a")
    assert "tracemalloc" in a.sections  # snapshot() runs it when tracing
    kept += allocate(30_000)
    b = memscope.snapshot(label="b")
    diff = memscope.compare(a, b)
    assert not diff.errors
    growth = diff.get("tracemalloc", f"top[{SITE}].size_bytes")
    assert growth is not None and growth.delta > 30_000 * 60
    assert diff.delta("tracemalloc", f"top[{SITE}].count") >= 29_000
    assert diff.delta("tracemalloc", "current_bytes") > 30_000 * 60
    del kept


def test_round_trip_and_summary() -> None:
    start_tracing(2)
    kept = allocate(10_000)
    snap = memscope.snapshot(collectors=["tracemalloc"])
    section = snap["tracemalloc"]
    assert isinstance(section, TracemallocSection)
    json.dumps(snap.to_dict())
    assert memscope.Snapshot.from_json(snap.to_json()) == snap
    lines = section.summary_lines(top=3)
    assert 2 <= len(lines) <= 6
    assert lines[0].startswith("traced ")
    assert "test_tracemalloc.py:" in lines[1]  # the biggest site, shown with a short path
    del kept


def test_top_is_bounded() -> None:
    start_tracing()
    kept: list[object] = [allocate(10)]
    kept.append([bytes(i) for i in range(100)])
    kept.append({i: str(i) for i in range(100)})
    kept.append({str(i) for i in range(100)})
    kept.append([bytearray(i) for i in range(100)])
    data = TracemallocCollector(top=3).collect()
    assert len(data["top"]) == 3  # type: ignore[arg-type]
    assert data["sites"] > 3  # type: ignore[operator]
    sizes = [row["size_bytes"] for row in data["top"]]  # type: ignore[attr-defined]
    assert sizes == sorted(sizes, reverse=True)
    del kept


@pytest.mark.parametrize(
    ("top", "error"), [(0, ValueError), (1001, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_bad_top_is_named(top: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="top"):
        TracemallocCollector(top=top)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frames", "error"),
    [(0, ValueError), (70_000, ValueError), ("2", TypeError), (True, TypeError)],
)
def test_start_tracing_validates_frames(frames: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="frames"):
        start_tracing(frames)  # type: ignore[arg-type]
    assert not tracemalloc.is_tracing()  # nothing half-done


def test_start_tracing_raises_frames_but_never_lowers_them() -> None:
    start_tracing(1)
    assert tracemalloc.get_traceback_limit() == 1
    start_tracing(5)  # more frames: restarted
    assert tracemalloc.get_traceback_limit() == 5
    kept = allocate(2_000)
    start_tracing(2)  # fewer: left alone, traces kept
    assert tracemalloc.get_traceback_limit() == 5
    assert row_for(TracemallocCollector().collect(), SITE)["count"] >= 2_000  # type: ignore[operator]
    del kept


def test_stop_tracing() -> None:
    stop_tracing()  # not tracing: a no-op
    start_tracing()
    assert tracemalloc.is_tracing()
    stop_tracing()
    assert not tracemalloc.is_tracing()


def test_lazy_reexport() -> None:
    assert memscope.start_tracing is start_tracing
    assert memscope.stop_tracing is stop_tracing
