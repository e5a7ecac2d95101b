"""Why is it alive: reference chains from the roots to an object, and what it retains.

``explain()`` lives in ``_explain``; the search in ``_chains``, the roots in ``_roots``,
sizes in ``_sizes``, words in ``_labels`` and the graph in ``_render`` (docs/why.md).
"""

from __future__ import annotations

from .._base.importwatch import watch

# what these imports leave as cyclic garbage (the stdlib's enums, a slots dataclass's
# first class) is memscope's, not the program's: find_leaks' first collection skips it
with watch():
    from ._chains import Chain
    from ._explain import Explanation, explain
    from ._leak_report import LeakReport
    from ._leaks import find_leaks

__all__ = ["Chain", "Explanation", "LeakReport", "explain", "find_leaks"]
