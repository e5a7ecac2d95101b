"""The Grafana dashboard plots memscope's metrics by the names the exporter really uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from memscope.integrations.prometheus import metric_names
from memscope.integrations.prometheus._families import FAMILIES

DASHBOARD = Path(__file__).parents[2] / "examples" / "grafana" / "memscope-dashboard.json"


def _exprs() -> list[str]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in data["panels"] for t in p["targets"]]


def test_every_name_in_the_dashboard_is_exported() -> None:
    exported = set(metric_names())
    histogram_series = {
        f"{n}{suffix}"
        for n, f in FAMILIES.items()
        if f.kind == "histogram"
        for suffix in ("_bucket", "_sum", "_count")
    }
    used = {name for expr in _exprs() for name in re.findall(r"memscope_[a-z0-9_]+", expr)}
    assert used, "the dashboard plots nothing"
    assert used <= exported | histogram_series, used - exported - histogram_series


def test_every_family_is_plotted_and_every_query_is_balanced() -> None:
    text = " ".join(_exprs())
    for name in metric_names():
        assert name in text, f"{name} is on no panel"
    for expr in _exprs():
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr
        assert 'job=~"$job"' in expr  # every panel follows the dashboard's variables


def test_panels_do_not_overlap() -> None:
    data = json.loads(DASHBOARD.read_text())
    cells = set()
    for panel in data["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
        assert g["x"] + g["w"] <= 24


def test_docs_list_every_metric() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "prometheus.md").read_text()
    rows = set(re.findall(r"^\| `(memscope_[a-z0-9_]+)` \|", docs, flags=re.MULTILINE))
    assert rows == set(metric_names())
