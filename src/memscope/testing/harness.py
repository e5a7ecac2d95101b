"""The internal API of the no-growth check for front ends such as the pytest plugin.

Not public API for users (they call :func:`memscope.testing.assert_no_growth`), but a
named seam that front ends may rely on instead of private modules:

* :class:`CheckOptions` (``CheckOptions.build(**kwargs)`` validates marker or ini options),
* :func:`run_check` (the check with a ``run_once(i)`` callback for each run),
* :func:`pending_tasks` (asyncio tasks not done yet, of one loop or of every loop),
* :class:`GrowthReport`, what a check returns, and :func:`signed`, how it writes deltas.
"""

from __future__ import annotations

from memscope._base.aio import pending_tasks

from ._driver import run_check
from ._options import CheckOptions
from ._report import GrowthReport, signed

__all__ = ["CheckOptions", "GrowthReport", "pending_tasks", "run_check", "signed"]
