"""Trends: the steady rule on synthetic series, injected timestamps, a real Monitor."""

from __future__ import annotations

import math
import random

import pytest

from memscope import Snapshot, Trend
from memscope.monitor._trends import fit, trends_of

HOUR = 3600.0


def times(n: int, step: float = 60.0) -> list[float]:
    return [1_700_000_000.0 + i * step for i in range(n)]


def test_a_line_is_steady_and_its_rate_is_per_hour() -> None:
    ts = times(30)
    ys = [100e6 + 2000.0 * (t - ts[0]) for t in ts]  # 2000 B/s
    result = fit(ts, ys)
    assert result.steady, result.reason
    assert result.slope * HOUR == pytest.approx(2000.0 * HOUR)
    assert result.r_squared == pytest.approx(1.0)
    assert result.samples == 30 and result.span_seconds == pytest.approx(29 * 60)


def test_a_line_with_some_noise_is_steady() -> None:
    rng = random.Random(1)
    ts = times(40)
    ys = [1e8 + 1000.0 * (t - ts[0]) + rng.gauss(0, 50_000) for t in ts]
    result = fit(ts, ys)
    assert result.steady, result.reason
    assert result.slope == pytest.approx(1000.0, rel=0.1)


def test_a_single_step_is_not_steady() -> None:
    ts = times(20)
    ys = [1e8 if i < 10 else 1.5e8 for i in range(20)]
    result = fit(ts, ys)
    assert result.slope > 0 and not result.steady
    assert "step" in result.reason or "noisy" in result.reason


def test_a_step_at_the_end_is_not_steady_even_with_a_high_r_squared() -> None:
    ts = times(12)
    ys = [1e8] * 11 + [9e8]
    result = fit(ts, ys)
    assert not result.steady


def test_a_step_with_noise_is_a_step() -> None:
    rng = random.Random(2)
    ts = times(30)
    ys = [(1e8 if i < 15 else 2e8) + rng.gauss(0, 1e6) for i in range(30)]
    result = fit(ts, ys)
    assert not result.steady
    assert result.sse_step < result.sse_line  # one step explains it better than any line


def test_a_sawtooth_is_not_steady() -> None:
    ts = times(40)
    ys = [1e8 + (i % 8) * 1e6 for i in range(40)]  # grows, is freed, grows again
    assert not fit(ts, ys).steady


def test_noise_around_a_flat_line_is_not_steady() -> None:
    rng = random.Random(3)
    ts = times(50)
    for _ in range(20):
        ys = [1e8 + rng.gauss(0, 1e6) for _ in ts]
        assert not fit(ts, ys).steady


def test_too_few_points_are_never_steady() -> None:
    ts = times(5)
    ys = [float(i) for i in range(5)]
    result = fit(ts, ys)
    assert not result.steady and "too few" in result.reason
    assert fit([], []).samples == 0
    assert not fit(ts[:1], ys[:1]).steady


def test_a_flat_or_shrinking_series_is_not_growth() -> None:
    ts = times(10)
    assert fit(ts, [5.0] * 10).reason == "not growing"
    assert fit(ts, [10.0 - i for i in range(10)]).reason == "not growing"


def test_a_series_that_levels_off_is_not_steady() -> None:
    ts = times(30)
    ys = [1e8 * (1 - math.exp(-i / 4)) for i in range(30)]  # a cache filling to its bound
    assert not fit(ts, ys).steady


def test_a_staircase_of_many_small_steps_is_steady() -> None:
    ts = times(40)
    ys = [1e8 + (i // 4) * 4e6 for i in range(40)]  # a leak that grows in chunks
    assert fit(ts, ys).steady


def test_fit_refuses_series_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        fit([1.0, 2.0], [1.0])


def snap(
    t: float, rss: int, *, census: list[tuple[str, int]] | None = None, **extra: int
) -> Snapshot:
    from memscope._registry import section_type

    sections = {"process": section_type("process")({"rss_bytes": rss})}
    if census is not None:
        sections["census"] = section_type("census")(
            {
                "by_type": [{"type": n, "count": s // 64, "size_bytes": s} for n, s in census],
                "by_module": [
                    {"module": "builtins", "count": 1, "size_bytes": sum(s for _, s in census)}
                ],
            }
        )
    if "tracked_len" in extra:
        sections["tracked"] = section_type("tracked")(
            {"objects": [{"name": "cache", "len": extra["tracked_len"], "size_bytes": 0}]}
        )
    if "tasks" in extra:
        sections["tasks"] = section_type("tasks")({"count": extra["tasks"]})
    if "threads" in extra:
        sections["threads"] = section_type("threads")({"count": extra["threads"]})
    return Snapshot(label=f"s{t}", timestamp=t, sections=sections)


def test_trends_of_snapshots_with_injected_timestamps() -> None:
    ts = times(24, step=300.0)  # two hours, every five minutes
    snaps = [
        snap(
            t,
            100 * 2**20 + i * 2**20,  # +1 MiB every 5 min = +12 MiB/h
            census=[("dict", 1000 + 10 * i), ("str", 5000)],
            tracked_len=i * 10,
            tasks=3,
            threads=2 if i < 12 else 5,
        )
        for i, t in enumerate(ts)
    ]
    found = trends_of(snaps)
    by_metric = {tr.metric: tr for tr in found}
    rss = by_metric["rss_bytes"]
    assert rss.steady and rss.unit == "bytes" and rss.samples == 24
    assert rss.per_hour == pytest.approx(12 * 2**20)
    assert str(rss) == "RSS +12.0 MiB/h over the last 1.9 h, steady"
    assert by_metric["tracked:cache"].steady
    assert by_metric["tracked:cache"].per_hour == pytest.approx(120.0)
    assert by_metric["census.type:dict"].steady
    assert "census.type:str" not in by_metric  # flat: not growth
    assert "tasks" not in by_metric
    threads = by_metric["threads"]
    assert not threads.steady and "step" in str(threads)
    # largest first on one scale: bytes, a count weighted as 64 bytes
    ranks = [tr.rank for tr in found]
    assert ranks == sorted(ranks, reverse=True)
    assert found[0].metric == "rss_bytes"
    # a window: the last 30 minutes only
    recent = {tr.metric: tr for tr in trends_of(snaps, seconds=1800)}
    assert recent["rss_bytes"].samples == 7
    assert trends_of(snaps, top=2) == found[:2]
    assert trends_of([]) == []


def test_trend_str_for_counts_and_short_spans() -> None:
    tr = Trend(
        metric="tracked:x",
        per_hour=340.0,
        steady=False,
        unit="count",
        span_seconds=900.0,
        samples=4,
        reason="too few samples (4 < 6)",
        title="tracked x len",
    )
    assert (
        str(tr) == "tracked x len +340/h over the last 15 min, not steady: too few samples (4 < 6)"
    )


_GROWING = """
import json, time
import memscope

class Grow(list):  # a plain list cannot be weakly referenced
    pass

grow = Grow()
monitor = memscope.Monitor(
    interval=0.05, history=200, collectors=["process", "tracked"], label="tg"
)
memscope.track(grow, name="tg.grow")
with monitor:
    deadline = time.monotonic() + 60
    while len(monitor) < 12 and time.monotonic() < deadline:
        grow.append(b"x" * (1 << 20))  # 1 MiB a round, written
        time.sleep(0.02)
found = {tr.metric: tr for tr in monitor.trends(top=None)}
print(json.dumps({
    "kept": len(monitor),
    "trends": {m: [t.per_hour, t.samples, t.steady, str(t)] for m, t in found.items()},
}))
"""


def test_trends_of_a_real_growing_process() -> None:
    # a process of its own: in a long-lived test process, malloc may serve the new blocks
    # from memory already resident, and then RSS does not grow with them
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _GROWING], capture_output=True, text=True, timeout=180, check=True
    )
    result = json.loads(out.stdout)
    assert result["kept"] >= 12
    per_hour, samples, steady, text = result["trends"]["tracked:tg.grow"]
    assert per_hour > 0 and samples >= 12
    assert steady, text
    assert result["trends"]["rss_bytes"][0] > 0
