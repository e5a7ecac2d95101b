"""What the endpoints answer with: strict JSON, and rows shaped from memscope's own objects."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

if TYPE_CHECKING:
    from .._snapshot import Snapshot
    from ..monitor import Monitor
    from ..monitor._trends import Trend

__all__ = ["alert_rows", "cache_row", "history_points", "json_response", "to_json", "trend_rows"]

ALERTS_SHOWN = 50  # of the monitor's last 100


def to_json(data: Any) -> bytes:
    """Strict JSON (no NaN) of ``data``; odd values become strings rather than errors."""
    try:
        return json.dumps(data, allow_nan=False, default=str, separators=(",", ":")).encode()
    except ValueError:  # a NaN or an infinity somewhere: null is what JSON can say
        return json.dumps(_finite(data), default=str, separators=(",", ":")).encode()


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response (Starlette's, with the strict encoder above)."""
    return Response(
        to_json(data), status, headers=dict(headers or {}), media_type="application/json"
    )


def alert_rows(monitor: Monitor) -> list[dict[str, Any]]:
    """The monitor's last alerts, newest first."""
    rows = list(monitor.alerts)[-ALERTS_SHOWN:]
    return [
        {
            "metric": a.metric,
            "value": a.value,
            "threshold": a.threshold,
            "unit": a.unit,
            "label": a.label,
            "timestamp": a.timestamp,
            "text": str(a),
        }
        for a in reversed(rows)
    ]


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def cache_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A tracked row with the figures every cache-like object shares pulled out."""
    stats = row.get("stats") if isinstance(row.get("stats"), Mapping) else {}
    assert isinstance(stats, Mapping)

    def first(*keys: str) -> int | float | None:
        for key in keys:
            found = _number(stats.get(key))
            if found is not None:
                return found
        return None

    hits, misses = first("hits", "hits_total"), first("misses", "misses_total")
    lookups = (hits or 0.0) + (misses or 0.0)
    return {
        "name": row.get("name"),
        "type": row.get("type"),
        "len": row.get("len"),
        "size_bytes": row.get("size_bytes"),
        "size_estimated": row.get("size_estimated"),
        "hits": hits,
        "misses": misses,
        "hit_rate": (hits or 0.0) / lookups if hits is not None and lookups > 0 else None,
        "evictions": first("evictions", "evictions_total"),
        "overflows": first("overflows_total", "overflows"),
        "stats": dict(stats),
        "error": row.get("error"),
    }


def history_points(snaps: Iterable[Snapshot]) -> list[dict[str, Any]]:
    """One point per kept snapshot, oldest first: when, RSS, objects (deep ones), tracked count."""
    points = []
    # by time taken: a take() from another thread can land in the history out of order
    for s in sorted(snaps, key=lambda snap: snap.timestamp):
        process: Mapping[str, Any] = s.get("process") or {}
        census = s.get("census")
        tracked: Mapping[str, Any] = s.get("tracked") or {}
        points.append(
            {
                "timestamp": s.timestamp,
                "label": s.label,
                "rss_bytes": process.get("rss_bytes"),
                "children_rss_bytes": process.get("children_rss_bytes"),
                "objects_total": None if census is None else census.get("objects_total"),
                "tracked": tracked.get("count"),
            }
        )
    return points


def trend_rows(trends: Iterable[Trend]) -> list[dict[str, Any]]:
    """Trends as JSON rows, with their sentence."""
    return [
        {
            "metric": t.metric,
            "per_hour": t.per_hour,
            "unit": t.unit,
            "steady": t.steady,
            "span_seconds": t.span_seconds,
            "samples": t.samples,
            "reason": t.reason,
            "text": str(t),
        }
        for t in trends
    ]
