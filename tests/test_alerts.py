"""Thresholds and alerts: the crossing rule on synthetic series, parsing, a real Monitor."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

import memscope
from memscope import Alert, Snapshot
from memscope._registry import section_type
from memscope.monitor._alerts import Crossing, parse_thresholds, read_metric


def fired(threshold: float, values: list[float | None]) -> list[int]:
    crossing = Crossing(threshold)
    return [i for i, v in enumerate(values) if crossing.update(v)]


def test_fires_once_per_crossing_and_rearms_below() -> None:
    assert fired(10, [1, 5, 10, 12, 30, 11, 10]) == [2]
    assert fired(10, [1, 12, 9.9, 12, 13, 2, 50]) == [1, 3, 6]
    assert fired(10, [20, 20, 20]) == [0]
    assert fired(10, [1, 2, 3]) == []


def test_missing_readings_change_nothing() -> None:
    assert fired(10, [12, None, 12, None, 5, None, 11]) == [0, 6]
    assert fired(10, [None, None]) == []


def test_parse_thresholds_accepts_each_metric() -> None:
    parsed = parse_thresholds(
        {
            "rss_bytes": "512MiB",
            "gc_collections_per_minute": 600,
            "gc_pause_seconds_max": 0.05,
            "objects_total": 1_000_000,
            "tasks": 100,
            "tracked:model_cache": 64,
        }
    )
    assert parsed["rss_bytes"] == 512 * 2**20
    assert parsed["gc_pause_seconds_max"] == 0.05
    assert parsed["tracked:model_cache"] == 64.0
    assert parse_thresholds({"rss_bytes": "80%"}, capacity=lambda: 1000) == {"rss_bytes": 800.0}
    assert parse_thresholds({"rss_bytes": 4096}) == {"rss_bytes": 4096.0}
    assert parse_thresholds(None) == {}


@pytest.mark.parametrize(
    ("thresholds", "error", "match"),
    [
        ({"rss": 1}, ValueError, "unknown metric 'rss'.*rss_bytes.*tracked:<name>"),
        ({"tracked:": 1}, ValueError, "unknown metric"),
        ({1: 1}, TypeError, "thresholds keys must be metric names"),
        ([("rss_bytes", 1)], TypeError, "thresholds must be a mapping"),
        ({"rss_bytes": "lots"}, ValueError, "not a size"),
        ({"rss_bytes": -5}, ValueError, "> 0 bytes"),
        ({"rss_bytes": True}, TypeError, "rss_bytes"),
        ({"tasks": 0}, ValueError, r"thresholds\['tasks'\] must be a number > 0"),
        ({"tasks": "10"}, TypeError, r"thresholds\['tasks'\] must be a number"),
        ({"gc_pause_seconds_max": float("nan")}, ValueError, "seconds > 0"),
        ({"objects_total": float("inf")}, ValueError, "finite"),
    ],
)
def test_bad_thresholds_are_refused_at_the_call(
    thresholds: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        memscope.Monitor(thresholds=thresholds)


def test_on_alert_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_alert must be callable or None"):
        memscope.Monitor(on_alert=3)  # type: ignore[arg-type]


def make(t: float, sections: dict[str, dict[str, Any]]) -> Snapshot:
    return Snapshot(
        label=f"at {t}",
        timestamp=t,
        sections={name: section_type(name)(data) for name, data in sections.items()},
    )


def gc_section(collections: int, max_s: float, total_s: float, pauses: int) -> dict[str, Any]:
    return {
        "collections_total": collections,
        "pause_seconds_max": max_s,
        "pause_seconds_total": total_s,
        "pauses_total": pauses,
    }


def test_read_metric_from_sections() -> None:
    a = make(100.0, {"gc": gc_section(10, 0.01, 0.05, 10), "process": {"rss_bytes": 5}})
    b = make(
        130.0,
        {
            "gc": gc_section(40, 0.01, 0.11, 20),
            "process": {"rss_bytes": 7},
            "tasks": {"count": 3},
            "census": {"objects_total": 123},
            "tracked": {"objects": [{"name": "c", "len": 9}, {"name": "d", "len": None}]},
        },
    )
    assert read_metric("rss_bytes", b, a) == 7.0
    assert read_metric("gc_collections_per_minute", b, a) == pytest.approx(60.0)
    assert read_metric("gc_collections_per_minute", b, None) is None  # a rate needs two
    # the longest pause did not change: the interval's mean (0.06 s over 10 pauses) is known
    assert read_metric("gc_pause_seconds_max", b, a) == pytest.approx(0.006)
    c = make(160.0, {"gc": gc_section(41, 0.2, 0.31, 21)})
    assert read_metric("gc_pause_seconds_max", c, b) == 0.2  # a new longest pause: exact
    assert read_metric("tasks", b, a) == 3.0
    assert read_metric("objects_total", b, a) == 123.0
    assert read_metric("objects_total", a, None) is None  # not a deep snapshot
    assert read_metric("tracked:c", b, a) == 9.0
    assert read_metric("tracked:d", b, a) is None
    assert read_metric("tracked:missing", b, a) is None


def test_alert_is_frozen_and_reads_well() -> None:
    alert = Alert("rss_bytes", 600 * 2**20, 512 * 2**20, "monitor #3", 1_700_000_000.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.value = 1  # type: ignore[misc]
    text = str(alert)
    assert text.startswith("memscope alert: rss_bytes = 600.0 MiB crossed its threshold 512.0 MiB")
    assert "monitor #3" in text
    assert "tasks = 12 crossed its threshold 10" in str(Alert("tasks", 12, 10, None, 0.0))


class Grow(list[bytes]):  # a plain list cannot be weakly referenced
    pass


def test_a_real_monitor_alerts_once_per_crossing(caplog: pytest.LogCaptureFixture) -> None:
    cache = Grow()
    memscope.track(cache, name="ta.cache")
    got: list[Alert] = []
    monitor = memscope.Monitor(
        interval=60,
        collectors=["tracked", "process"],
        thresholds={"tracked:ta.cache": 3, "rss_bytes": 1},
        on_alert=got.append,
        label="ta",
    )
    try:
        with caplog.at_level(logging.WARNING, logger="memscope.monitor"):
            for n in [1, 3, 4, 1, 5]:
                cache[:] = [b"x"] * n
                monitor.take()
    finally:
        memscope.untrack(cache)
    tracked = [a for a in got if a.metric == "tracked:ta.cache"]
    assert [(a.value, a.label) for a in tracked] == [(3.0, "ta #2"), (5.0, "ta #5")]
    assert [a.metric for a in got].count("rss_bytes") == 1  # always over 1 byte: once
    assert list(monitor.alerts) == got
    assert monitor.memscope_stats()["alerts_total"] == 3
    assert sum("memscope alert: tracked:ta.cache" in r.getMessage() for r in caplog.records) == 2


def test_a_failing_on_alert_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    def boom(alert: Alert) -> None:
        raise RuntimeError("hook bug")

    monitor = memscope.Monitor(
        interval=60, collectors=["process"], thresholds={"rss_bytes": 1}, on_alert=boom, label="tb"
    )
    with caplog.at_level(logging.WARNING, logger="memscope.monitor"):
        monitor.take()
        monitor.take()
    assert monitor.errors_total == 1
    assert len(monitor.alerts) == 1
    assert any("on_alert failed" in r.getMessage() for r in caplog.records)


def test_alerts_are_bounded() -> None:
    monitor = memscope.Monitor(interval=60, collectors=["tracked"], label="tc")
    assert monitor.alerts.maxlen == 100
