"""``explain()``: why an object is alive, what it costs, and a picture of who holds it."""

from __future__ import annotations

import gc
import time
import types
from dataclasses import dataclass
from pathlib import Path

from .._base.units import format_bytes, type_name
from .._base.validate import check_int, check_number
from ..collectors._chains import BATCH as _BATCH
from ..collectors._chains import DIRECT_LIMIT as _DIRECT_LIMIT
from ._chains import Chain, search
from ._labels import is_a, long_type, mro
from ._render import check_path, render, to_dot
from ._roots import find_roots, is_ours
from ._sizes import measure

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    """Why one object is alive: reference chains from roots, and what it retains.

    It holds only text and numbers, never the object or anything on its chains.
    """

    target: str  # "zoo_service.Model at 0x7f..."
    chains: tuple[Chain, ...]
    retained_bytes: int  # freed if the object's referrers let it go (its dominated set)
    deep_bytes: int  # everything reachable from it, shared objects included
    retained_objects: int
    deep_objects: int
    instances: int = 1  # live instances of the type asked about (1 for an object)
    same_path: int = 0  # other instances held by the same holder as the one explained
    partial: bool = False  # the timeout or max_depth cut the search short
    sizes_complete: bool = True
    seconds: float = 0.0
    dot: str = ""  # the reference graph around the chains, as DOT text
    path: str | None = None  # where the graph was written, if asked

    def __str__(self) -> str:
        if not self.chains:
            return f"(no reference chain found to {self.target})"
        return "\n".join(str(c) for c in self.chains)

    def report(self) -> str:
        """Chains, then sizes and counts, as a few lines of text."""
        lines = [f"why is {self.target} alive?"]
        lines += [f"  {c}" for c in self.chains] or ["  (no reference chain found)"]
        bound = "" if self.sizes_complete else " (at least: timed out)"
        lines.append(
            f"retained {format_bytes(self.retained_bytes)} in {self.retained_objects:,} objects;"
            f" deep {format_bytes(self.deep_bytes)} in {self.deep_objects:,} objects{bound}"
        )
        if self.instances > 1:
            lines.append(
                f"{self.instances:,} live instances; {self.same_path:,} others share this path"
            )
        if self.partial:
            lines.append("partial: the search stopped before every chain reached a root")
        return "\n".join(lines)


def explain(
    obj_or_type: object,
    *,
    max_depth: int = 20,
    max_chains: int = 3,
    path: str | Path | None = None,
    timeout: float = 10.0,
) -> Explanation:
    """Why ``obj_or_type`` (an object, a type, or a qualified type name) is alive."""
    check_int("max_depth", max_depth, low=1, high=10_000)
    check_int("max_chains", max_chains, low=1, high=1_000)
    timeout = check_number("timeout", timeout, low=0.0, low_open=True, unit="seconds")
    if path is not None:
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or Path or None, got {type(path).__name__}")
        check_path(path)  # a missing Graphviz fails now, not after the walk
    started = time.monotonic()
    deadline = started + timeout
    instances, same_path = 1, 0
    if type(obj_or_type) is str or is_a(obj_or_type, type):
        target, instances, same_path = _representative(obj_or_type, deadline)
    else:
        target = obj_or_type
    del obj_or_type
    what = f"{long_type(target)} at {hex(id(target))}"
    roots = find_roots()
    try:
        stop = {oid for oid, root in roots.by_id.items() if root.kind in _NOT_OWNED}
        # sizes get at most half the time: the chains are what the caller asked first
        sizes = measure(target, stop, started + timeout / 2)
        found = search(target, roots, max_depth=max_depth, max_chains=max_chains, deadline=deadline)
    finally:
        roots.release()
    del target
    dot = to_dot(found.nodes, found.edges, f"why is {what} alive?")
    written = str(render(dot, path)) if path is not None else None
    return Explanation(
        target=what,
        chains=tuple(found.chains),
        retained_bytes=sizes.retained_bytes,
        deep_bytes=sizes.deep_bytes,
        retained_objects=sizes.retained_objects,
        deep_objects=sizes.deep_objects,
        instances=instances,
        same_path=same_path,
        partial=found.partial,
        sizes_complete=sizes.complete,
        seconds=time.monotonic() - started,
        dot=dot,
        path=written,
    )


_NOT_OWNED = {"module", "sys.modules", "thread"}


def _matcher(wanted: object) -> tuple[str, object]:
    if type(wanted) is str:
        if not wanted.strip():
            raise ValueError("obj_or_type must be an object, a type or a qualified type name")
        return wanted.strip(), None
    return type_name(wanted), wanted  # type: ignore[arg-type]


def _representative(wanted: object, deadline: float) -> tuple[object, int, int]:
    """(one instance from the largest group by holder, instances, others in its group)."""
    name, cls = _matcher(wanted)
    matches: dict[type, bool] = {}

    def is_match(tp: type) -> bool:
        hit = matches.get(tp)
        if hit is None:
            if cls is not None:
                hit = any(k is cls for k in mro(tp))
            else:
                hit = any(type_name(k) == name for k in mro(tp))
            matches[tp] = hit
        return hit

    everything = gc.get_objects()
    found = [o for o in everything if is_match(type(o))]
    del everything
    if not found:
        raise ValueError(f"obj_or_type: no live instance of {name} is tracked by the gc")
    groups = _group_by_holder(found, deadline)
    best = max(groups.values(), key=len)
    target = best[0]
    total = len(found)
    found.clear()
    groups.clear()
    return target, total, len(best) - 1


def _group_by_holder(found: list[object], deadline: float) -> dict[int, list[object]]:
    """id(direct holder) -> the instances it holds (an instance counts in one group)."""
    wanted = {id(o): o for o in found}
    holder: dict[int, int] = {}
    skip = {id(found), id(wanted), id(holder)}
    # a few instances: one C pass finds their referrers; many: batches of the whole heap
    few = len(found) <= _DIRECT_LIMIT
    sources = gc.get_referrers(*found) if few else gc.get_objects()
    skip.add(id(sources))
    ids = wanted.keys()
    for start in range(0, len(sources), _BATCH):
        batch = sources[start : start + _BATCH]
        if ids.isdisjoint(map(id, gc.get_referents(*batch))):
            continue
        for r in batch:
            if id(r) in skip or (type(r) is types.FrameType and is_ours(r)):
                continue
            for c in gc.get_referents(r):
                if id(c) in wanted and id(c) not in holder:
                    holder[id(c)] = id(r)
        if time.monotonic() > deadline:
            break
    sources = []
    groups: dict[int, list[object]] = {}
    for oid, obj in wanted.items():
        groups.setdefault(holder.get(oid, 0), []).append(obj)
    wanted.clear()
    return groups
