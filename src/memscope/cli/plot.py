"""``memscope plot in.jsonl -o out.png``: RSS and the largest types (or modules) over time."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import CLIError
from ._common import BAD_INPUT, Parser, load_file, positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .._snapshot import Snapshot

MiB = float(1 << 20)
INSTALL = "pip install 'memscope[plot]'"
NO_DEEP_NOTE = (
    "No deep snapshots in this file, so no types or modules over time.\n"
    "Record them with memscope.Monitor(deep_every=N, record=path): "
    "every Nth snapshot scans the heap."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope plot``."""
    p = Parser(prog="memscope plot", description=__doc__)
    p.add_argument(
        "file", metavar="in.jsonl", help="snapshots saved as JSON Lines (a Monitor's record)"
    )
    p.add_argument("-o", "--output", required=True, metavar="out.png", help="the PNG to write")
    p.add_argument("--top", type=positive_int, default=8, help="types or modules drawn (default 8)")
    p.add_argument(
        "--by",
        choices=("type", "module"),
        default="type",
        help="group the heap census by type (default) or by module",
    )
    return p


def _time_axis(snaps: Sequence[Snapshot]) -> tuple[list[float], str]:
    """Time since the first snapshot, in the unit that keeps the numbers small."""
    start = snaps[0].timestamp
    span = snaps[-1].timestamp - start
    scale, unit = (
        (3600.0, "h") if span >= 3 * 3600 else (60.0, "min") if span >= 180 else (1.0, "s")
    )
    return [(s.timestamp - start) / scale for s in snaps], unit


def _process_mib(snap: Snapshot, key: str) -> float:
    section = snap.get("process")
    value = None if section is None else section.get(key)
    return float(value) / MiB if isinstance(value, (int, float)) else math.nan


def census_series(
    snaps: Sequence[Snapshot], by: str, top: int
) -> tuple[list[int], dict[str, list[float]]]:
    """(indexes of the deep snapshots, top names -> MiB in each); NaN where a name is not listed."""
    table, column = ("by_type", "type") if by == "type" else ("by_module", "module")
    deep: list[int] = []
    sizes: list[dict[str, float]] = []
    for k, snap in enumerate(snaps):
        census = snap.get("census")
        if census is None:
            continue
        rows = census.get(table) or []
        deep.append(k)
        sizes.append({str(r[column]): float(r["size_bytes"]) / MiB for r in rows})
    # rank by the largest size each reached, so a type that grew and then shrank still shows
    peak: dict[str, float] = {}
    for row in sizes:
        for name, mib in row.items():
            peak[name] = max(peak.get(name, 0.0), mib)
    names = sorted(peak, key=lambda n: (-peak[n], n))[:top]
    return deep, {name: [row.get(name, math.nan) for row in sizes] for name in names}


def build_figure(snaps: Sequence[Snapshot], *, top: int = 8, by: str = "type") -> Figure:
    """The matplotlib Figure of ``memscope plot``: an RSS panel, and a census panel if any."""
    from matplotlib.figure import Figure

    times, unit = _time_axis(snaps)
    deep, series = census_series(snaps, by, top)
    panels = 2 if deep else 1
    fig = Figure(figsize=(10, 4.2 * panels + (0 if deep else 0.6)), layout="constrained")
    axes: list[Axes] = [fig.add_subplot(panels, 1, 1)]
    if deep:
        # one time axis for both panels, so a step in RSS lines up with the census below it
        axes.append(fig.add_subplot(2, 1, 2, sharex=axes[0]))
    label = snaps[-1].label or "snapshots"
    fig.suptitle(
        f"memscope: pid {snaps[-1].pid}, {len(snaps)} snapshots ({len(deep)} deep), last {label!r}",
        fontsize=12,
    )

    rss = axes[0]
    rss.plot(times, [_process_mib(s, "rss_bytes") for s in snaps], marker=".", label="RSS")
    children = [_process_mib(s, "children_rss_bytes") for s in snaps]
    if any(v > 0 for v in children if not math.isnan(v)):
        rss.plot(times, children, marker=".", label="children RSS")
    rss.set_title("Resident memory of the process")
    rss.set_ylabel("MiB")
    rss.set_xlabel(f"time since the first snapshot ({unit})")
    rss.set_ylim(bottom=0)
    rss.grid(alpha=0.3)
    rss.legend(loc="upper left")

    if not deep:
        # a figure-level label: constrained layout makes room for it (a plain fig.text
        # would sit on top of the x axis)
        fig.supxlabel(NO_DEEP_NOTE, fontsize=10, color="dimgray")
        return fig
    heap = axes[1]
    deep_times = [times[k] for k in deep]
    for name, values in series.items():
        heap.plot(deep_times, values, marker="o", label=name)
    heap.set_title(f"Top {len(series)} {by}s by size (heap census of the deep snapshots)")
    heap.set_ylabel("MiB")
    heap.set_xlabel(f"time since the first snapshot ({unit})")
    heap.set_ylim(bottom=0)
    heap.grid(alpha=0.3)
    # handles and labels given explicitly: matplotlib leaves out of an automatic legend any
    # label starting with "_", which a type of module __main__ ("__main__.Session") does
    lines = heap.get_lines()
    heap.legend(
        lines, [str(line.get_label()) for line in lines], loc="upper left", fontsize=8, ncols=2
    )
    return fig


def _load(path: str) -> list[Snapshot]:
    return load_file(path, "in.jsonl")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    ns = build_parser().parse_args(argv)
    try:
        import matplotlib
    except ImportError as exc:
        raise CLIError(
            f"plot needs matplotlib, which is not installed: {INSTALL}", BAD_INPUT
        ) from exc
    # Agg: a file is the only output, and no display may be opened (or present)
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    snaps = _load(ns.file)
    fig = build_figure(snaps, top=ns.top, by=ns.by)
    FigureCanvasAgg(fig)  # attaches itself to the figure: no pyplot, no global state
    try:
        fig.savefig(ns.output, format="png", dpi=100)
    except OSError as exc:
        raise CLIError(f"-o: cannot write {ns.output}: {exc.strerror or exc}", BAD_INPUT) from exc
    print(f"wrote {os.path.abspath(ns.output)}")
    return 0
