"""The shortest reference chains from the roots to one object: one breadth-first pass
over the reverse reference graph.

Each level of the search asks for the referrers of the whole frontier at once. A small
frontier goes to one ``gc.get_referrers(*frontier)`` call (one C pass over the heap, but
it compares every reference with every frontier object, so its cost grows with the
frontier); a wide one is answered by one pass over ``gc.get_objects()`` in batches,
where ``gc.get_referents(*batch)`` tells in C whether a batch holds any frontier object
and only those batches are looked at one object at a time. Either way the search costs a
few heap passes, not one per hop or per object (``objgraph.find_backref_chain`` calls
``gc.get_referrers`` once per object it visits).

The search keeps ids, not objects, wherever it can, and everything it made is skipped
when it shows up as a referrer, so the answer never names memscope's own bookkeeping.
"""

from __future__ import annotations

import gc
import sys
import time
import types
from dataclasses import dataclass, field

from ._labels import edge_label, is_a, short_type, summary
from ._roots import RANK_CALLER, Root, Roots, is_ours

__all__ = ["Chain", "Search", "search"]

# up to this many frontier objects, one gc.get_referrers call beats a batched pass (measured
# on a 2M-object heap: 66 ms for one object, +1.7 ms per extra object, vs 390 ms a pass)
_DIRECT_LIMIT = 128
_BATCH = 1_000
# after the first chain from a real root, look this many levels further for alternatives
_SLACK_LEVELS = 3


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


def _referrers(frontier: list[object], skip: set[int], deadline: float) -> list[tuple[object, int]]:
    """(referrer, id of the frontier object it refers to) for the whole frontier."""
    wanted = {id(o) for o in frontier}
    pairs: list[tuple[object, int]] = []
    if len(frontier) <= _DIRECT_LIMIT:
        candidates = gc.get_referrers(*frontier)
        skip.add(id(candidates))
        for r in candidates:
            if id(r) in skip:
                continue
            _match(r, wanted, pairs)
        skip.discard(id(candidates))
        del candidates
        return pairs
    everything = gc.get_objects()
    skip.add(id(everything))
    try:
        for start in range(0, len(everything), _BATCH):
            batch = everything[start : start + _BATCH]
            if wanted.isdisjoint(map(id, gc.get_referents(*batch))):
                continue
            for r in batch:
                if id(r) not in skip:
                    _match(r, wanted, pairs)
            if time.monotonic() > deadline:
                break
    finally:
        skip.discard(id(everything))
        del everything
    return pairs


def _match(r: object, wanted: set[int], pairs: list[tuple[object, int]]) -> None:
    # every frontier object r holds: a root that holds two of them starts two chains
    seen: set[int] = set()
    for c in gc.get_referents(r):
        cid = id(c)
        if cid in wanted and cid not in seen:
            seen.add(cid)
            pairs.append((r, cid))


def search(
    target: object,
    roots: Roots,
    *,
    max_depth: int,
    max_chains: int,
    deadline: float,
    graph_nodes: int = 40,
) -> Search:
    """Breadth-first from ``target`` up its referrers until ``max_chains`` roots are met."""
    started = time.monotonic()
    result = Search()
    parent: dict[int, int] = {}  # id(referrer) -> id(the object nearer the target it holds)
    keep: dict[int, object] = {id(target): target}  # id -> object, for everything visited
    referred: set[int] = set()  # ids that were found to have at least one referrer
    # (rank, depth, id(root object), id(the object it holds, None for the target), root)
    hits: list[tuple[int, int, int, int | None, Root]] = []
    hit_keys: set[tuple[int, int]] = set()
    frontier: list[object] = [target]
    pairs: list[tuple[object, int]] = []
    skip = {id(parent), id(keep), id(frontier), id(hits), id(roots.held), id(result)}
    skip.add(id(roots.by_id))
    skip.add(id(pairs))
    first = roots.get(target)
    if first is not None:
        hits.append((first.rank, 0, id(target), None, first))
    depth = 0
    best_depth: int | None = None
    try:
        while frontier and depth < max_depth:
            if time.monotonic() > deadline:
                result.partial = True
                break
            if best_depth is not None and depth >= best_depth + _SLACK_LEVELS:
                break
            if sum(1 for h in hits if h[0] < RANK_CALLER) >= max_chains:
                break
            skip.add(id(frontier))
            pairs = _referrers(frontier, skip, deadline)
            skip.add(id(pairs))
            depth += 1
            following: list[object] = []
            skip.add(id(following))
            for r, child in pairs:
                rid = id(r)
                referred.add(child)
                if type(r) is types.FrameType and is_ours(r):
                    continue
                root = roots.get(r)
                if root is not None:
                    # a root is where a chain starts: never walk past it, but each object of
                    # the frontier it holds starts a chain of its own
                    if (rid, child) not in hit_keys and rid != id(target):
                        hit_keys.add((rid, child))
                        keep[rid] = r
                        hits.append((root.rank, depth, rid, child, root))
                        if root.rank < RANK_CALLER and best_depth is None:
                            best_depth = depth
                    continue
                if rid in parent or rid in keep:
                    continue
                parent[rid] = child
                keep[rid] = r
                following.append(r)
            pairs = []
            frontier = following
            del following
            if time.monotonic() > deadline and frontier:
                result.partial = True
                break
        if frontier and depth >= max_depth and not any(h[0] < RANK_CALLER for h in hits):
            result.partial = True
        result.depth = depth
        result.visited = len(keep)
        hits.sort(key=lambda h: (h[0], h[1]))
        for _, _, start, held, root in hits[:max_chains]:
            path = [keep[start], *(_path(held, parent, keep) if held is not None else [])]
            result.chains.append(_chain(path, root))
        if not result.chains:
            result.chains.extend(_dead_ends(target, frontier, parent, keep, referred, result))
        _graph(result, hits[:max_chains], parent, keep, graph_nodes)
    finally:
        frontier.clear()
        keep.clear()
        pairs = []
    result.seconds = time.monotonic() - started
    return result


def _path(rid: int, parent: dict[int, int], keep: dict[int, object]) -> list[object]:
    """Objects from the root (``rid``) down to the target."""
    path = [keep[rid]]
    while rid in parent:
        rid = parent[rid]
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
