"""Allocation sites of a leak: tracemalloc snapshots compared, and the traced pass taking them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ._options import CheckOptions, ignore_predicate
from ._report import AllocationSite, GrowthReport
from ._settle import abc_classes, settle

__all__ = ["HARNESS_DIR", "TracedPass", "grown_sites", "is_harness_file"]

#: memscope's own package directory: frames there belong to the harness (this package,
#: the census, the bottom layer), never to the code under test
HARNESS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the test runner's own bookkeeping of a rerun test is never the leak
_RUNNER_PACKAGES = ("_pytest", "pluggy", "pytest_asyncio", "anyio", "xdist")


def is_harness_file(filename: str) -> bool:
    """True for a file of memscope itself."""
    return filename.startswith(HARNESS_DIR + os.sep)


def _library_dirs() -> tuple[str, ...]:
    import sysconfig

    dirs = {
        sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    return tuple(sorted(os.path.join(d, "") for d in dirs if d))


_LIBRARY_DIRS = _library_dirs()


def is_app_file(filename: str) -> bool:
    """True for a file of the application: not the stdlib, not an installed package."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return (
        not filename.startswith(_LIBRARY_DIRS) and f"{os.sep}site-packages{os.sep}" not in filename
    )


def _format_traceback(traceback: Iterable[Any], limit: int) -> list[str]:
    """Frames oldest first, the harness's own frames left out, each with its source line."""
    import linecache

    frames = [f for f in traceback if not is_harness_file(f.filename)]
    lines: list[str] = []
    for frame in frames[-limit:]:
        lines.append(f'File "{frame.filename}", line {frame.lineno}')
        source = linecache.getline(frame.filename, frame.lineno).strip()
        if source:
            lines.append(f"  {source}")
    return lines


def grown_sites(
    start: Any, end: Any, opts: CheckOptions, ignored: Callable[[str], bool]
) -> list[AllocationSite]:
    """Allocation sites that hold more memory in ``end`` than in ``start``, largest first."""
    import tracemalloc

    drop = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, os.path.join(HARNESS_DIR, "*")),
        *(tracemalloc.Filter(False, f"*{os.sep}{pkg}{os.sep}*") for pkg in _RUNNER_PACKAGES),
    ]
    stats = end.filter_traces(drop).compare_to(start.filter_traces(drop), "traceback")
    by_site: dict[tuple[str, int], AllocationSite] = {}
    for stat in stats:
        if stat.size_diff <= 0 or stat.count_diff < 1:
            continue
        inner = stat.traceback[-1] if len(stat.traceback) else None
        if inner is None or ignored(inner.filename):
            continue
        # the site is the application's line: the first frame, from the allocation up,
        # outside the stdlib and installed packages (json's decoder allocates, the
        # caller's line is what leaks); the block's own frame is kept beside it
        frame = next((f for f in reversed(stat.traceback) if is_app_file(f.filename)), inner)
        if is_harness_file(frame.filename):
            # what memscope's own calls set off (a gc callback of another library run by
            # the settle's collection): the code under test called none of it
            continue
        key = (frame.filename, frame.lineno)
        site = by_site.get(key)
        if site is None:
            by_site[key] = AllocationSite(
                filename=frame.filename,
                lineno=frame.lineno,
                size_bytes_delta=stat.size_diff,
                count_delta=stat.count_diff,
                traceback=_format_traceback(stat.traceback, opts.trace_frames),
                allocated_in=""
                if (frame.filename, frame.lineno) == (inner.filename, inner.lineno)
                else f"{inner.filename}:{inner.lineno}",
            )
        else:
            site.size_bytes_delta += stat.size_diff
            site.count_delta += stat.count_diff
    out = list(by_site.values())
    # the sites that grew at least once per round first: those are the leak's
    out.sort(key=lambda site: (site.count_delta < opts.rounds, -site.size_bytes_delta))
    del stats
    return out[: opts.top]


class TracedPass:
    """After a leak verdict: ``rounds`` more runs under tracemalloc to name the sites.

    Tracing is kept out of the measured rounds, where it would slow the census several
    times over; the extra runs happen only when there is a leak to explain.
    """

    def __init__(self, opts: CheckOptions) -> None:
        import tracemalloc

        self.opts = opts
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start(opts.trace_frames)
        self.start: Any = None
        self.last = 0
        self.traced: list[int] = []
        self.abcs = abc_classes()  # found once: the walk's own buffers are malloc noise

    def mark(self, i: int) -> None:
        """Reading ``i`` of the pass: 0 after the unmeasured run, then one per round."""
        import tracemalloc

        settle(self.opts, abcs=self.abcs)
        if i == 0:
            self.start = tracemalloc.take_snapshot()
        else:
            now = tracemalloc.get_traced_memory()[0]
            self.traced.append(now - self.last)
        self.last = tracemalloc.get_traced_memory()[0]

    def apply(self, report: GrowthReport) -> None:
        """Put the sites and per-round traced bytes into ``report``."""
        import tracemalloc

        if self.start is None:
            return
        end = tracemalloc.take_snapshot()
        report.sites = grown_sites(self.start, end, self.opts, ignore_predicate(self.opts.ignore))
        report.deltas["traced_bytes"] = list(self.traced)
        report.tracing = True

    def close(self) -> None:
        """Stop tracemalloc if the pass started it."""
        import tracemalloc

        self.start = None
        self.abcs = ()
        if self.started:
            tracemalloc.stop()
            self.started = False
