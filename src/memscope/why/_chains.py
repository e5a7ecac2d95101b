"""The shortest reference chains from the roots to one object.

The walk itself (one breadth-first pass over the reverse reference graph, a heap pass a
level) is ``memscope.collectors._chains.Walk``, shared with the containers' holder hints;
this module decides where explain()'s search stops, ranks the roots it met and puts the
chains into words.
"""

from __future__ import annotations

import itertools
import sys
import time
import types
from dataclasses import dataclass, field

from ..collectors._chains import Walk
from ._forward import Near, all_classes
from ._labels import edge_label, is_a, short_type, summary
from ._roots import RANK_CALLER, Root, Roots

__all__ = ["Chain", "Search", "search"]

# after the first chain from a real root, look this many levels further for alternatives
_SLACK_LEVELS = 3
# at most this many meetings of the climb with the forward levels become chains
_MEETINGS_USED = 32


@dataclass(frozen=True)
class Chain:
    """One reference chain from a root to the object, as words."""

    root: str  # "module zoo_service", "thread MainThread frame main() at app.py:3", ...
    hops: tuple[str, ...]  # "module zoo_service attribute registry", "Registry.by_profile", ...
    kind: str = "module"  # the root's kind, or "partial"/"outside-gc" when no root was reached
    partial: bool = False  # the search stopped (timeout or max_depth) before reaching a root

    def __str__(self) -> str:
        return " -> ".join(self.hops)

    def __len__(self) -> int:
        """Number of references along the chain."""
        return max(len(self.hops) - 1, 0)


@dataclass
class Search:
    """What the walk found: chains and the reference edges around them (as ids)."""

    chains: list[Chain] = field(default_factory=list)
    partial: bool = False
    depth: int = 0
    visited: int = 0
    seconds: float = 0.0
    # the graph around the chains, for rendering: node id -> (label, kind), (src, dst, label)
    nodes: dict[int, tuple[str, str]] = field(default_factory=dict)
    edges: list[tuple[int, int, str]] = field(default_factory=list)


def search(
    target: object,
    roots: Roots,
    *,
    max_depth: int,
    max_chains: int,
    deadline: float,
    graph_nodes: int = 40,
) -> Search:
    """Breadth-first from ``target`` up its referrers until ``max_chains`` roots are met.

    The climb meets the forward levels of :class:`Near` on the way: an object found there
    completes a chain at once, and the levels' depth ``D`` proves, after ``B`` levels of
    climbing, that every chain of up to ``B + D + 1`` references has been seen.
    """
    started = time.monotonic()
    result = Search()
    near = Near(_sources(roots), deadline)
    skip = {id(roots.by_id), id(roots.objects), id(result), *near.ids()}
    walk: Walk[Root] = Walk([target], roots.get, skip)
    joined = _Joined(near, walk, roots, skip, max_depth)
    joined.meet([target])
    first: int | None = None  # the level of the climb where the first chain showed
    try:
        while walk.frontier and walk.depth < max_depth:
            if time.monotonic() > deadline:
                result.partial = True
                break
            hits = joined.hits()
            if first is None and any(h[0] < RANK_CALLER for h in hits):
                first = walk.depth
            if first is not None and walk.depth >= first + _SLACK_LEVELS:
                break
            proven = walk.depth + near.complete + 1  # no chain this short was missed
            if len({(h[2], h[3]) for h in hits if h[0] < RANK_CALLER and h[1] <= proven}) >= (
                max_chains
            ):
                break
            walk.step(deadline)
            joined.meet(walk.frontier)
            if time.monotonic() > deadline and walk.frontier:
                result.partial = True
                break
        hits = joined.hits()
        good = any(h[0] < RANK_CALLER for h in hits)
        if walk.frontier and walk.depth >= max_depth and not good:
            result.partial = True
        result.depth = walk.depth
        result.visited = len(walk.keep)
        hits.sort(key=lambda h: (h[0], h[1]))
        hits = _distinct(hits)
        parent, keep = walk.parent, walk.keep
        for _, _, start, held, root in hits[:max_chains]:
            path = [keep[start], *(_path(held, parent, keep) if held is not None else [])]
            result.chains.append(_chain(path, root))
        if not result.chains:
            result.chains.extend(
                _dead_ends(target, walk.frontier, parent, keep, walk.referred, result)
            )
        _graph(result, hits[:max_chains], parent, keep, graph_nodes)
    finally:
        walk.release()
        near.release()
        joined.release()
    result.seconds = time.monotonic() - started
    return result


def _sources(roots: Roots) -> list[object]:
    """Every root of the first rank, and every class (a class is always a root)."""
    ranked = [obj for oid, obj in roots.objects.items() if roots.by_id[oid].rank < RANK_CALLER]
    return [*ranked, *all_classes()]


_HitRow = tuple[int, int, int, "int | None", Root]  # (rank, length, root id, its child, root)


class _Joined:
    """The chains the climb (``walk``) and the forward levels (``near``) make together."""

    def __init__(
        self, near: Near, walk: Walk[Root], roots: Roots, skip: set[int], max_depth: int
    ) -> None:
        self.near, self.walk, self.roots, self.skip = near, walk, roots, skip
        self.max_depth = max_depth
        self.met: list[_HitRow] = []  # chains through an object both walks reached
        skip.add(id(self.met))

    def meet(self, objs: list[object]) -> None:
        """Join each of ``objs`` (just reached by the climb) that a forward level holds."""
        depth = self.walk.depth
        for obj in objs:
            if len(self.met) >= _MEETINGS_USED:
                return
            level = self.near.depth(obj, len(objs))
            if level is None or level == 0 or depth + level > self.max_depth:
                continue
            row = self._join(obj, level, depth + level)
            if row is not None:
                self.met.append(row)

    def _join(self, obj: object, level: int, total: int) -> _HitRow | None:
        """The forward part (root down to ``obj``) joins the climb's ``parent`` links."""
        down = self.near.path(obj, level, self.skip)
        if down is None:
            return None
        root = self.roots.get(down[0])
        if root is None:
            return None
        parent, keep = self.walk.parent, self.walk.keep
        keep.setdefault(id(down[0]), down[0])
        for upper, lower in itertools.pairwise(down[1:]):
            if id(upper) in keep:
                break  # the climb reached it (or it is the object): its way down is known
            keep[id(upper)] = upper
            parent[id(upper)] = id(lower)
        return (root.rank, total, id(down[0]), id(down[1]), root)

    def hits(self) -> list[_HitRow]:
        """Every chain known now: roots the climb met, then the joined ones."""
        rows: list[_HitRow] = [
            (h.root.rank, h.depth, h.rid, h.child, h.root) for h in self.walk.hits
        ]
        return rows + self.met

    def release(self) -> None:
        """Drop the rows (they hold no objects, only ids and roots)."""
        self.met.clear()


def _distinct(hits: list[_HitRow]) -> list[_HitRow]:
    """Each (root, first hop) once: a chain met twice on its way down is one chain."""
    seen: set[tuple[int, int | None]] = set()
    out = []
    for hit in hits:
        key = (hit[2], hit[3])
        if key not in seen:
            seen.add(key)
            out.append(hit)
    return out


def _path(rid: int, parent: dict[int, int], keep: dict[int, object]) -> list[object]:
    """Objects from the root (``rid``) down to the target.

    A parent link back into the path (a bug of the search, never a heap shape) ends the
    path there rather than looping until memory runs out.
    """
    path = [keep[rid]]
    seen = {rid}
    while rid in parent:
        rid = parent[rid]
        if rid in seen:
            break
        seen.add(rid)
        path.append(keep[rid])
    return path


def _dead_ends(
    target: object,
    frontier: list[object],
    parent: dict[int, int],
    keep: dict[int, object],
    referred: set[int],
    result: Search,
) -> list[Chain]:
    """Chains that end before a root: a search cut short, or a holder the gc cannot see."""
    chains: list[Chain] = []
    if result.partial:
        why = f"search stopped at depth {result.depth}"
        for obj in frontier[:3]:
            path = _path(id(obj), parent, keep)
            chains.append(Chain(why, (f"({why})", *describe(path)), "partial", True))
        return chains
    # every object visited with no referrer the gc knows of, yet more references than ours
    for oid in keep:
        if oid in referred:
            continue
        path = _path(oid, parent, keep)
        what = (
            "held where the gc cannot see (from C: an atexit callback, a C extension,"
            " a native stack)"
        )
        chains.append(Chain(what, (f"({what})", *describe(path)), "outside-gc", False))
        if len(chains) >= 3:
            break
    if not chains and target is not None:
        what = "no chain found"
        chains.append(Chain(what, (f"({what})", short_type(target)), "partial", True))
    return chains


def _chain(path: list[object], root: Root) -> Chain:
    hops = describe(path, root)
    return Chain(root.text, tuple(hops), root.kind, False)


def describe(path: list[object], root: Root | None = None) -> list[str]:
    """The hops of ``path`` (root first, target last) in words, one string each."""
    hops: list[str] = []
    i = 0
    n = len(path)
    while i < n - 1:
        holder, child = path[i], path[i + 1]
        label = edge_label(holder, child)
        name = _node_name(holder, root if i == 0 else None)
        # an instance (or class, or module) and its __dict__ are one hop: Registry.by_profile
        if label == ".__dict__" and i + 2 < n:
            inner = edge_label(child, path[i + 2])
            if inner.startswith("[") and inner.endswith("]"):
                key = inner[1:-1]
                key = key[1:-1] if key[:1] in "'\"" and key[-1:] == key[:1] else key
                hops.append(_attribute(name, key, holder, root if i == 0 else None))
                i += 2
                continue
        # a function's closure tuple and the cell in it are one hop: handler() free variable
        if label == ".__closure__" and i + 3 < n and type(path[i + 2]) is types.CellType:
            names = holder.__code__.co_freevars  # type: ignore[attr-defined]
            index = edge_label(child, path[i + 2])[1:-1]
            var = names[int(index)] if index.isdigit() and int(index) < len(names) else "?"
            hops.append(f"{name} free variable {var}")
            i += 3
            continue
        # threading.local: the local, its per-thread dicts by weakref, the dict of one thread
        if _is_thread_local(holder) and i + 3 < n:
            inner = edge_label(path[i + 2], path[i + 3])
            if inner.startswith("['"):
                hops.append(f"{name}.{inner[2:-2]} (one thread's value)")
                i += 3
                continue
        if i == 0 and root is not None and root.kind == "frame" and label.startswith("['"):
            hops.append(f"{name} local {label[2:-2]}")
        elif i == 0 and root is not None and root.kind == "module" and label.startswith("["):
            hops.append(f"{name} attribute {label[1:-1].strip(chr(39))}")
        elif i == 0 and root is not None and root.kind == "sys.modules":
            hops.append(f"sys.modules{label}")
        else:
            hops.append(f"{name}{label}" if label else name)
        i += 1
    if path:
        hops.append(_node_name(path[-1], root if n == 1 else None))
    return hops


def _is_thread_local(obj: object) -> bool:
    thread = sys.modules.get("_thread")
    local = getattr(thread, "_local", None)
    return local is not None and type(obj) is local


def _attribute(name: str, key: str, holder: object, root: Root | None) -> str:
    if root is not None or is_a(holder, type) or is_a(holder, types.ModuleType):
        return f"{name} attribute {key}"
    return f"{name}.{key}"


def _node_name(obj: object, root: Root | None) -> str:
    if root is not None:
        return root.text
    tp = type(obj)
    if tp is types.FunctionType:
        return f"function {obj.__qualname__}"  # type: ignore[attr-defined]
    if tp is types.FrameType:
        return f"frame {obj.f_code.co_name}()"  # type: ignore[attr-defined]
    if tp in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
        kind = {types.CoroutineType: "coroutine", types.GeneratorType: "generator"}.get(
            tp, "async generator"
        )
        return f"{kind} {obj.__qualname__}()"  # type: ignore[attr-defined]
    if tp is types.CellType:
        return "cell"
    if _is_thread_local(obj):
        return "threading.local"
    if is_a(obj, type):
        return f"class {obj.__qualname__}"  # type: ignore[attr-defined]
    return short_type(obj)


def _graph(
    result: Search,
    hits: list[tuple[int, int, int, int | None, Root]],
    parent: dict[int, int],
    keep: dict[int, object],
    limit: int,
) -> None:
    """The nodes and edges to draw: every chain, then other visited referrers, bounded."""
    nodes = result.nodes
    chain_ids: list[int] = []
    roots_by_id = {rid: root for _, _, rid, _, root in hits}
    for _, _, rid, child, _root in hits:
        if rid not in chain_ids:
            chain_ids.append(rid)
        node: int | None = child
        while node is not None and node not in chain_ids:
            chain_ids.append(node)
            node = parent.get(node)
    extra = [oid for oid in keep if oid not in chain_ids and parent.get(oid) in set(chain_ids)]
    target_ids = [oid for oid in keep if oid not in parent and oid not in roots_by_id]
    for oid in [*target_ids, *chain_ids, *extra][:limit]:
        obj = keep[oid]
        root = roots_by_id.get(oid)
        if root is not None:
            nodes[oid] = (root.text, "root")
        elif oid in target_ids:
            nodes[oid] = (f"{summary(obj)}\n(the object)", "target")
        else:
            nodes[oid] = (summary(obj), "chain" if oid in chain_ids else "other")
    links = [(oid, child) for oid, child in parent.items() if oid in nodes and child in nodes]
    links += [(rid, c) for _, _, rid, c, _ in hits if c is not None and c in nodes]
    on_chains = set(chain_ids)
    for src, dst in dict.fromkeys(links):
        # only chain hops may read an instance's attributes (which can create its __dict__)
        named = src in on_chains and dst in on_chains
        result.edges.append((src, dst, edge_label(keep[src], keep[dst], attributes=named)))
