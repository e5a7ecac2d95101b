"""Snapshot: a structured picture of the process's memory at one moment."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from . import _registry
from ._base.collector import Collector, CollectorUnavailable, HeapRequest, snapshot_depth
from ._base.section import Section
from ._base.validate import check_bool, check_int

SCHEMA = 1


def _python_version() -> str:
    # what platform.python_version() says, without importing platform (slow to import)
    v = sys.version_info
    name = {"cpython": "CPython", "pypy": "PyPy"}.get(
        sys.implementation.name, sys.implementation.name
    )
    extra = "" if v.releaselevel == "final" else f"{v.releaselevel[0]}{v.serial}"
    return f"{name} {v.major}.{v.minor}.{v.micro}{extra}"


class Snapshot:
    """Sections by collector name, errors by collector name, and when/where it was taken."""

    __slots__ = ("errors", "label", "pid", "python", "sections", "timestamp")

    def __init__(
        self,
        *,
        label: str | None = None,
        timestamp: float | None = None,
        pid: int | None = None,
        python: str | None = None,
        sections: Mapping[str, Section] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self.label = label
        self.timestamp = time.time() if timestamp is None else float(timestamp)
        self.pid = os.getpid() if pid is None else int(pid)
        self.python = _python_version() if python is None else python
        self.sections: dict[str, Section] = dict(sections or {})
        self.errors: dict[str, str] = dict(errors or {})

    @property
    def collectors(self) -> list[str]:
        """Names of the collectors that ran (successfully or not)."""
        return sorted(self.sections.keys() | self.errors.keys())

    def __getitem__(self, name: str) -> Section:
        try:
            return self.sections[name]
        except KeyError:
            if name in self.errors:
                raise KeyError(f"collector {name!r} failed: {self.errors[name]}") from None
            raise KeyError(
                f"no section {name!r} in this snapshot; it has {sorted(self.sections)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.sections

    def get(self, name: str) -> Section | None:
        """The section for ``name``, or None if it was not collected."""
        return self.sections.get(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<Snapshot label={self.label!r} pid={self.pid} "
            f"sections={sorted(self.sections)} errors={sorted(self.errors)}>"
        )

    def to_dict(self) -> dict[str, Any]:
        """The versioned, JSON-safe dict form (the public schema)."""
        return {
            "schema": SCHEMA,
            "label": self.label,
            "timestamp": self.timestamp,
            "pid": self.pid,
            "python": self.python,
            "sections": {name: s.to_dict() for name, s in self.sections.items()},
            "errors": dict(self.errors),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a Snapshot from :meth:`to_dict` output."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"data['schema'] must be {SCHEMA}, got {schema!r}")
        # what loads must render, compare and save again: refuse what could not, here
        stamp: Any = data.get("timestamp")
        if type(stamp) not in (int, float) or not 0 <= stamp <= _MAX_TIMESTAMP:
            raise ValueError(f"data['timestamp'] must be seconds since 1970, got {stamp!r}")
        if type(data.get("pid")) is not int:
            raise ValueError(f"data['pid'] must be an int, got {data.get('pid')!r}")
        sections = {
            name: _registry.section_type(name).from_dict(body)
            for name, body in dict(data.get("sections") or {}).items()
        }
        return cls(
            label=data.get("label"),
            timestamp=data["timestamp"],
            pid=data["pid"],
            python=data.get("python", ""),
            sections=sections,
            errors=dict(data.get("errors") or {}),
        )

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (kwargs go to json.dumps; NaN is refused)."""
        kwargs.setdefault("allow_nan", False)
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Rebuild a Snapshot from :meth:`to_json` output (ValueError for anything else)."""
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int)
        except RecursionError:
            raise ValueError("nested too deeply to be a snapshot") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text: {exc}") from None
        return cls.from_dict(data)

    def report(self, *, top: int = 10) -> str:
        """A human-readable report, one block per section."""
        from ._report import render_snapshot

        check_int("top", top, low=1)
        return render_snapshot(self, top=top)

    def __str__(self) -> str:
        return self.report()


def snapshot(
    label: str | None = None,
    deep: bool = False,
    collectors: Iterable[str] | None = None,
) -> Snapshot:
    """Take a snapshot: cheap collectors (+ tracemalloc when tracing), ``deep`` adds heap scans."""
    import tracemalloc

    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a str or None, got {type(label).__name__}")
    check_bool("deep", deep)
    chosen = _registry.select(collectors, deep=deep, tracing=tracemalloc.is_tracing())
    snap = Snapshot(label=label)
    from .collectors._heap import shared_scans

    # heap scans run first, before the other sections exist, so they count the program's
    # objects rather than this snapshot's; they share one walk of the heap, made once for
    # what all of them asked for
    order = sorted(chosen, key=lambda c: c.cost != "scan")
    request = HeapRequest.combine(_heap_requests(order))
    depth = snapshot_depth.set("deep" if deep else "cheap")
    try:
        with shared_scans(request):
            for collector in order:
                section, error = run_collector(collector)
                if section is not None:
                    snap.sections[collector.name] = section
                if error is not None:
                    snap.errors[collector.name] = error
    finally:
        snapshot_depth.reset(depth)
    if collectors is None:
        # a plugged-in collector that failed to load is reported like one that failed to run
        for name, error in _registry.entry_point_errors().items():
            snap.errors.setdefault(name, f"entry point failed to load: {error}")
    rank = {c.name: i for i, c in enumerate(chosen)}
    snap.sections = dict(sorted(snap.sections.items(), key=lambda kv: rank[kv[0]]))
    return snap


def _heap_requests(collectors: Iterable[Collector]) -> Iterator[HeapRequest]:
    """What the scan collectors ask of the heap walk (a failing request is left out)."""
    for collector in collectors:
        ask = getattr(collector, "heap_request", None)
        if collector.cost != "scan" or not callable(ask):
            continue
        try:
            request = ask()
        except Exception:  # its collect() will fail, or walk for itself, and say so
            continue
        if isinstance(request, HeapRequest):
            yield request


def run_collector(collector: Collector) -> tuple[Section | None, str | None]:
    """Run one collector; any failure becomes an error string, never an exception."""
    try:
        available = getattr(collector, "available", None)
        if callable(available):
            reason = available()
            if reason:
                return None, f"unavailable: {reason}"
        data = collector.collect()
        kind: type[Section] = _registry.section_type(collector.name)
        if isinstance(data, Section):
            kind = type(data)
            data = data.to_dict()
        if not isinstance(data, Mapping):
            return None, (
                f"collect() returned {type(data).__name__}; expected a Section or a mapping"
            )
        # the JSON round trip is part of the contract, for a returned Section too: what a
        # snapshot holds is exactly what it will load back (int keys become str, tuples
        # lists) and can always be saved (no NaN, which strict JSON readers refuse)
        data = json.loads(json.dumps(data, allow_nan=False))
        return kind.from_dict(data), None
    except CollectorUnavailable as exc:
        return None, f"unavailable: {exc}"
    except (Exception, SystemExit, GeneratorExit) as exc:
        # a plug-in calling sys.exit() must not end the host (nor a Monitor's thread)
        return None, f"{type(exc).__name__}: {exc}"


# a timestamp beyond this (the year 5138) is no time a snapshot was taken, and breaks
# time.localtime() in reports
_MAX_TIMESTAMP = 1e11
# digits an int may have in a snapshot file: a wider one fits no counter and breaks
# float arithmetic in compare()
_MAX_INT_DIGITS = 30


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (a snapshot never holds NaN or infinity)")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is no snapshot value")
    return int(text)


def save(snapshots: Snapshot | Iterable[Snapshot], path: str | os.PathLike[str]) -> int:
    """Append snapshots to a JSON Lines file (one snapshot a line); returns how many."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    if isinstance(snapshots, Snapshot):
        items = [snapshots]
    elif isinstance(snapshots, Iterable) and not isinstance(snapshots, (str, bytes, Mapping)):
        items = list(snapshots)
    else:
        raise TypeError(
            "snapshots must be a Snapshot or an iterable of Snapshots, "
            f"got {type(snapshots).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, Snapshot):
            raise TypeError(f"snapshots[{i}] must be a Snapshot, got {type(item).__name__}")
    lines = "".join(item.to_json(separators=(",", ":")) + "\n" for item in items)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lines)
        fh.flush()
    return len(items)


def iter_load(source: str | os.PathLike[str] | IO[str]) -> Iterator[Snapshot]:
    """Yield snapshots from a JSON Lines file; a truncated last line is skipped.

    A line that is not a snapshot raises ValueError naming ``file:line``.
    """
    if isinstance(source, (str, os.PathLike)):
        return _iter_path(Path(source))
    if not callable(getattr(source, "readline", None)):
        raise TypeError(
            f"source must be a file path or an open text file, got {type(source).__name__}"
        )
    return _iter_lines(source, str(getattr(source, "name", "<stream>")))


def _iter_path(path: Path) -> Iterator[Snapshot]:
    # read as bytes: a line that is not UTF-8 is refused with its number, like any bad line
    with open(path, "rb") as fh:
        yield from _iter_lines(fh, str(path))


def _iter_lines(fh: IO[Any], where: str) -> Iterator[Snapshot]:
    line: str | bytes
    for number, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            yield Snapshot.from_json(line)
        except (ValueError, KeyError, TypeError) as exc:
            complete = line.endswith(b"\n") if isinstance(line, bytes) else line.endswith("\n")
            if complete:
                raise ValueError(f"{where}:{number}: not a snapshot: {exc}") from exc
            # only the last line can lack its newline: a write still in progress, skipped


def load(source: str | os.PathLike[str] | IO[str]) -> list[Snapshot]:
    """Read every snapshot of a JSON Lines file, tolerating a truncated last line."""
    return list(iter_load(source))
