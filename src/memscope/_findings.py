"""Findings: what a diff says in plain sentences, strongest evidence of a leak first.

``find(diff)`` reads the sections of both snapshots and the changes between them and
names the culprit the way a user searches for it: the container that grew and the named
root that holds it, the program's own types that multiplied and where they sit, open
files by kind, pending tasks by coroutine, threads by name, and memory outside Python
objects with the C-extension types that likely hold it. Pure: snapshots in, findings out.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._base.section import Change
from ._base.units import format_value

if TYPE_CHECKING:
    from ._diff import Diff

__all__ = ["KINDS", "Finding", "find", "type_weight"]

KINDS = ("container", "type", "resource", "tasks", "threads", "native")

# below these a change is noise of a live process, not evidence
MIN_ENTRIES = 50  # a container's new entries
MIN_OBJECTS = 20  # new instances of a program's own type
MIN_FDS = 3
MIN_TASKS = 10
MIN_THREADS = 2
MIN_NATIVE_BYTES = 32 << 20  # RSS growth worth explaining

# how much one unit of evidence weighs, in bytes-equivalent, so kinds rank on one scale
_FD = 1 << 20
_THREAD = 4 << 20
_TASK = 256 << 10
_OBJECT = 16 << 10
_ENTRY = 4 << 10

# the interpreter's and the standard library's bookkeeping: it grows along with whatever
# the program does (a weakref per handler, a context per task), so it says least
_PLUMBING = (
    "weakref.",
    "_weakref",
    "_weakrefset.",
    "_collections.",
    "_contextvars.",
    "_asyncio.",
    "asyncio.",
    "_abc.",
    "abc.",
    "typing.",
    "_thread.",
    "threading.",
    "collections.",
    "_ctypes.",
    "psutil.",
)

# the pieces a file, a socket or a client is made of: told only when nothing holds them
_PARTS = ("_io.", "io.", "encodings.", "socket.", "_socket.", "_ssl.", "ssl.SSLSocket")

# which objects hold which kind of fd
_FD_TYPES = {
    "sockets": ("socket", "SSLSocket", "Client", "Connection", "Transport"),
    "files": ("FileIO", "BufferedWriter", "BufferedReader", "TextIOWrapper", "FileHandler"),
    "pipes": ("Popen", "Pipe"),
}
_FD_WORDS = {
    "files": ("file", "an open file"),
    "sockets": ("socket", "a socket"),
    "pipes": ("pipe", "a pipe"),
    "eventfds": ("eventfd", "an eventfd"),
    "anon_inodes": ("anon inode", "an anonymous inode"),
    "other": ("other fd", "an fd"),
}


@dataclass(frozen=True)
class Finding:
    """One piece of evidence of a leak, as a plain sentence (``evidence``) and its parts."""

    kind: str  # one of KINDS
    what: str  # the culprit: a holder path, a type, "open files", a coroutine, ...
    holder: str | None  # who holds it, when known
    delta: float  # how many more (entries, objects, fds, tasks, threads; bytes for native)
    size: int | None  # bytes more, when known
    evidence: str  # the sentence
    score: float = 0.0  # strength of the evidence (bytes-equivalent), for ordering

    def __str__(self) -> str:
        return self.evidence

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": self.kind,
            "what": self.what,
            "holder": self.holder,
            "delta": self.delta,
            "size": self.size,
            "evidence": self.evidence,
            "score": self.score,
        }


def _section(snap: Any, name: str) -> Mapping[str, Any]:
    found = snap.sections.get(name)
    return found if isinstance(found, Mapping) else {}


def _num(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def type_weight(name: str) -> float:
    """How telling a grown count of ``name`` is: the program's own types most."""
    if name.startswith(_PLUMBING) or name.startswith("memscope."):
        return 0.05
    top = name.split(".", 1)[0]
    if top in sys.stdlib_module_names or top.lstrip("_") in sys.stdlib_module_names:
        return 0.5
    return 1.0


def _plural(n: float, word: str) -> str:
    return f"{n:+,.0f} {word}" + ("" if abs(n) == 1 else "s")


def find(diff: Diff) -> list[Finding]:
    """Every finding of ``diff``, strongest evidence first."""
    found: list[Finding] = []
    types = _type_changes(diff)
    for make in (_fds, _threads, _tasks, _containers_and_types, _native):
        try:
            found.extend(make(diff, types))
        except Exception:  # an odd or third-party section must not cost the other findings
            continue
    found.sort(key=lambda f: f.score, reverse=True)
    return _without_parts(found)


def _without_parts(found: list[Finding]) -> list[Finding]:
    """Drop the file objects a handler or a client is made of when the handler is told:
    +300 FileHandlers are also +300 FileIO, BufferedWriter, TextIOWrapper and encoders."""
    wholes = [f for f in found if f.kind == "type" and not f.what.startswith(_PARTS)]
    return [
        f
        for f in found
        if not (
            f.kind == "type"
            and f.what.startswith(_PARTS)
            and any(abs(w.delta - f.delta) <= 0.02 * f.delta for w in wholes)
        )
    ]


def _type_changes(diff: Diff) -> dict[str, tuple[float, float]]:
    """type name -> (count delta, size delta) from the census tables."""
    out: dict[str, list[float]] = {}
    for change in diff.changes.get("census", ()):
        key = change.key
        if not key.startswith(("by_type[", "by_count[")) or "]." not in key:
            continue
        name, field = key[key.index("[") + 1 :].rsplit("].", 1)
        row = out.setdefault(name, [0.0, 0.0])
        if field == "count":
            row[0] = change.delta
        elif field == "size_bytes":
            row[1] = change.delta
    return {k: (v[0], v[1]) for k, v in out.items()}


def _many(diff: Diff, name: str, count: float) -> tuple[str, str]:
    """("+300", "") or, for a type the earlier census did not list, ("2,000", " (at most 1
    before)"): the later count is exact, the earlier one only bounded."""
    change = diff.get("census", f"by_type[{name}].count")
    if change is None:
        change = diff.get("census", f"by_count[{name}].count")
    note: object = getattr(change, "note", "") if change is not None else ""
    if change is not None and note:
        return f"{change.after:,.0f}", f" (at most {change.before:,.0f} before)"
    return f"{count:+,.0f}", ""


def _fds(diff: Diff, types: dict[str, tuple[float, float]]) -> list[Finding]:
    a, b = _section(diff.a, "process"), _section(diff.b, "process")
    kinds_a, kinds_b = a.get("fds"), b.get("fds")
    total = _num(b.get("num_fds")) - _num(a.get("num_fds"))
    if isinstance(kinds_a, Mapping) and isinstance(kinds_b, Mapping):
        deltas = {k: _num(kinds_b.get(k)) - _num(kinds_a.get(k)) for k in kinds_b}
        total = sum(deltas.values())
    else:
        deltas = {}
    if total < MIN_FDS:
        return []
    grown = sorted(((d, k) for k, d in deltas.items() if d > 0), reverse=True)
    if grown and grown[0][0] >= 0.9 * total:
        kind = grown[0][1]
        text = f"open files {total:+,.0f}, {'all' if grown[0][0] >= total else 'mostly'} {kind}"
        holder_types = _holding_types(kind, types, grown[0][0])
    elif grown:
        kind = grown[0][1]
        text = f"open files {total:+,.0f}: " + ", ".join(f"{k} {d:+,.0f}" for d, k in grown[:3])
        holder_types = _holding_types(kind, types, grown[0][0])
    else:
        kind = "fds"
        text = f"open files {total:+,.0f} (by kind: unavailable here)"
        holder_types = []
    if holder_types:
        text += " (" + ", ".join(f"{name} {n:+,.0f}" for name, n in holder_types) + ")"
    return [Finding("resource", f"open {kind}", None, total, None, text, total * _FD)]


def _holding_types(
    kind: str, types: dict[str, tuple[float, float]], n: float
) -> list[tuple[str, float]]:
    """The grown types that likely hold fds of ``kind``, most first (at most two)."""
    words = _FD_TYPES.get(kind, ())
    hits = [
        (count, name)
        for name, (count, _) in types.items()
        if count > 0 and any(w in _short(name) for w in words)
    ]
    hits.sort(reverse=True)
    return [(name, count) for count, name in hits[:2] if count >= min(n, MIN_OBJECTS) / 2]


def _threads(diff: Diff, types: dict[str, tuple[float, float]]) -> list[Finding]:
    a, b = _section(diff.a, "threads"), _section(diff.b, "threads")
    delta = _num(b.get("count")) - _num(a.get("count"))
    if delta < MIN_THREADS:
        return []
    names = [
        (c.delta, c.key[len("by_name[") : -len("].count")])
        for c in diff.changes.get("threads", ())
        if c.key.startswith("by_name[") and c.key.endswith("].count") and c.delta > 0
    ]
    names.sort(reverse=True)
    text = f"{_plural(delta, 'thread')} running"
    if names:
        text += " " + ", ".join(f"{name} ({n:+,.0f})" for n, name in names[:3])
    else:
        text = _plural(delta, "thread")
    what = names[0][1] if names else "threads"
    return [Finding("threads", what, None, delta, None, text, delta * _THREAD)]


def _tasks(diff: Diff, types: dict[str, tuple[float, float]]) -> list[Finding]:
    a, b = _section(diff.a, "tasks"), _section(diff.b, "tasks")
    found: list[Finding] = []
    pending = _num(b.get("pending")) - _num(a.get("pending"))
    done = _num(b.get("done")) - _num(a.get("done"))
    rows = {
        c.key[len("by_coroutine[") : -len("].count")]: c.delta
        for c in diff.changes.get("tasks", ())
        if c.key.startswith("by_coroutine[") and c.key.endswith("].count") and c.delta > 0
    }
    top = sorted(((n, name) for name, n in rows.items()), reverse=True)
    running = f" running {top[0][1]}()" if top else ""
    if pending >= MIN_TASKS:
        text = f"{pending:+,.0f} pending tasks{running}"
        if len(top) > 1:
            text += " (and " + ", ".join(f"{name}() {n:+,.0f}" for n, name in top[1:3]) + ")"
        what = top[0][1] if top else "tasks"
        found.append(Finding("tasks", what, None, pending, None, text, pending * _TASK))
    if done >= MIN_TASKS:
        text = f"{done:+,.0f} finished tasks still referenced{running}: their results stay alive"
        what = top[0][1] if top else "tasks"
        found.append(Finding("tasks", what, None, done, None, text, done * _TASK / 4))
    return found


_NAMED_ROOTS = ("functools.lru_cache of ", "logger ", "BoundedCache ", "pending task ", "local ")


def _stdlib_path(path: str) -> bool:
    """Whether ``path`` starts at a standard-library module (``logging._handlerList``)."""
    if path.startswith(_NAMED_ROOTS):
        return False
    top = path.split(".", 1)[0]
    return " " not in top and (
        top in sys.stdlib_module_names or top.lstrip("_") in sys.stdlib_module_names
    )


def _owner_words(row: Mapping[str, Any]) -> str:
    owner = row.get("owner")
    tname = str(row.get("type") or "container")
    if isinstance(owner, str) and owner and not owner.startswith(("logger ", "functools.")):
        return f" (a {tname} on {_short(owner)})"
    return ""


def _containers_and_types(diff: Diff, types: dict[str, tuple[float, float]]) -> list[Finding]:
    rows_b = {str(r.get("key")): r for r in _section(diff.b, "containers").get("top") or ()}
    grown: list[tuple[Change, Mapping[str, Any], float]] = []
    sizes = {
        c.key[: -len(".size_bytes")]: c.delta
        for c in diff.changes.get("containers", ())
        if c.key.endswith(".size_bytes")
    }
    for change in diff.changes.get("containers", ()):
        if not (change.key.startswith("top[") and change.key.endswith("].length")):
            continue
        if change.delta < MIN_ENTRIES:
            continue
        row = rows_b.get(change.key[4 : -len("].length")])
        if row is None:
            continue
        grown.append((change, row, sizes.get(change.key[: -len(".length")], 0.0)))
    # one container reached by two names is one finding: the longest path names it best
    used_types: set[str] = set()
    findings: list[Finding] = []
    for change, row, size in grown:
        path = row.get("path") or row.get("where") or f"a {row.get('type')}"
        held = [str(t) for t in row.get("held") or ()]
        own = [
            t
            for t in held
            if "." in t and types.get(t, (0.0, 0.0))[0] >= MIN_OBJECTS and type_weight(t) > 0.1
        ]
        note = getattr(change, "note", "")
        # new in the top list: it grew by at least the delta, likely by most of its length
        entries = max(change.delta, 0.5 * _num(row.get("length"))) if note else change.delta
        score = max(size, 0.0) + entries * _ENTRY
        if row.get("path"):
            score *= 2  # a named root is stronger evidence than a nameless dict
        if _stdlib_path(str(path)):
            # the standard library's own registries (logging's list of every handler, a
            # WeakSet of tasks) mirror the program's leak: they are not its holder
            score *= 0.05
        if own and held and own[0] == held[0] and row.get("type") in ("list", "set", "deque"):
            # a list of the program's objects: the objects are the story, the list holds them
            name = own[0]
            count, tsize = types[name]
            used_types.add(name)
            many, bound = _many(diff, name, count)
            text = f"{many} {name} objects in {path}{bound}"
            extra = _fd_each(diff, name, count)
            weight = type_weight(name) * (2 if row.get("path") else 1)
            if extra:
                score += count * _FD / 2
            findings.append(
                Finding(
                    "type",
                    name,
                    str(path),
                    count,
                    int(tsize) or None,
                    text + extra,
                    score + count * _OBJECT * weight,
                )
            )
            continue
        if note:
            text = f"{path}{_owner_words(row)} holds {row.get('length', 0):,} entries ({note})"
        else:
            text = f"{path}{_owner_words(row)} grew by {change.delta:,.0f} entries"
            if size > 0:
                text += f", {format_value(size, 'bytes', signed=True)}"
        text += _values(held, types, change.delta)
        if own:
            name = own[0]
            count, tsize = types[name]
            used_types.add(name)
            many, _ = _many(diff, name, count)
            text += f", and keeps {many} {_short(name)} objects alive"
            score += count * _OBJECT * type_weight(name)
        findings.append(
            Finding(
                "container",
                str(path),
                None if _stdlib_path(str(path)) else str(row.get("where") or path),
                change.delta,
                int(size) or None,
                text,
                score,
            )
        )
    places = _type_places(diff)
    for name, (count, size) in types.items():
        if name in used_types or "." not in name or count < MIN_OBJECTS:
            continue
        many, bound = _many(diff, name, count)
        place = places.get(name)
        text = f"{many} {name} objects" + (f" in {place}" if place else "") + bound
        if size > 0:
            text += f", {format_value(size, 'bytes', signed=True)}"
        each = _fd_each(diff, name, count)
        score = (count * _OBJECT + max(size, 0.0)) * type_weight(name) * (2 if place else 1)
        if each:
            score += count * _FD / 2  # objects that each hold an fd: the fds' own evidence
        text += each
        findings.append(Finding("type", name, place, count, int(size) or None, text, score))
    return findings


def _values(held: list[str], types: dict[str, tuple[float, float]], entries: float) -> str:
    """``, holding +20,004 bytes (+39.7 MiB)`` when the values' type grew with the entries."""
    if not held or "." in held[0]:
        return ""  # the program's own types are told as objects kept alive
    count, size = types.get(held[0], (0.0, 0.0))
    if entries <= 0 or abs(count - entries) > 0.1 * entries or size <= 0:
        return ""
    return f", holding {count:+,.0f} {held[0]} ({format_value(size, 'bytes', signed=True)})"


def _type_places(diff: Diff) -> dict[str, str]:
    """type name -> where its instances live (the census's sampled holder path)."""
    census = _section(diff.b, "census")
    return {
        str(row.get("type")): str(row["where"])
        for row in census.get("by_count") or ()
        if isinstance(row, Mapping) and row.get("where")
    }


def _fd_each(diff: Diff, name: str, count: float) -> str:
    """ ", each holding an open file" when the fds of the matching kind grew as much."""
    a, b = _section(diff.a, "process"), _section(diff.b, "process")
    kinds_a, kinds_b = a.get("fds"), b.get("fds")
    if not (isinstance(kinds_a, Mapping) and isinstance(kinds_b, Mapping)):
        return ""
    for kind, words in _FD_TYPES.items():
        if not any(w in _short(name) for w in words):
            continue
        grew = _num(kinds_b.get(kind)) - _num(kinds_a.get(kind))
        if grew >= MIN_FDS and abs(grew - count) <= max(2.0, 0.1 * count):
            return f", each holding {_FD_WORDS[kind][1]}"
    return ""


def _native(diff: Diff, types: dict[str, tuple[float, float]]) -> list[Finding]:
    rss = diff.delta("process", "rss_bytes")
    if rss < MIN_NATIVE_BYTES or "census" not in diff.changes:
        return []
    python = diff.delta("census", "size_bytes_total")
    if python > rss / 4:
        return []
    natives: dict[str, float] = {}
    for snap in (diff.b,):
        census = _section(snap, "census")
        for table in ("by_type", "by_count"):
            for row in census.get(table) or ():
                name = str(row.get("type"))
                grew = types.get(name, (0.0, 0.0))[0] > 0
                if row.get("native") and grew and type_weight(name) > 0.1:
                    natives[name] = types[name][0]
    top = sorted(((n, name) for name, n in natives.items()), reverse=True)[:2]
    text = (
        f"RSS {format_value(rss, 'bytes', signed=True)} but Python objects "
        f"{format_value(python, 'bytes', signed=True)}: native memory"
    )
    if top:
        text += "; " + ", ".join(f"{n:+,.0f} {name}" for n, name in top)
    else:
        text += " (no C-extension type grew in count: a C library's own allocations?)"
    what = top[0][1] if top else "native memory"
    return [Finding("native", what, None, rss - python, int(rss - python), text, rss - python)]
