"""Prove that code does not leak: :func:`assert_no_growth` and the one-shot :func:`no_growth`.

The method is the one CPython's own test runner uses for reference leaks (``-R``),
made to work on a normal build: run the code ``warmup`` times, then ``rounds``
measured times; before every reading clear the interpreter's known caches and
collect garbage, then read allocated blocks, open file descriptors, live threads,
pending asyncio tasks, a complete census of objects by type and (when tracing)
tracemalloc's traced bytes. Memory leaks only when it grew on *every* measured
round; file descriptors and threads leak on any growth. See ``docs/testing.md``.

Layout: ``_options`` (CheckOptions), ``_settle`` (caches, collection), ``_probe`` (the
readings), ``_verdict`` (the pure rules), ``_sites`` (allocation sites), ``_driver``
(the step generator and its sync and async loops), ``_checks`` (the public checks) and
``harness`` (the internal seam for front ends such as the pytest plugin).
"""

from __future__ import annotations

from ._checks import assert_no_growth, assert_no_growth_async, no_growth
from ._report import AllocationSite, GrowthReport, TypeGrowth
from ._settle import clear_interpreter_caches

__all__ = [
    "AllocationSite",
    "GrowthReport",
    "TypeGrowth",
    "assert_no_growth",
    "assert_no_growth_async",
    "clear_interpreter_caches",
    "no_growth",
]
