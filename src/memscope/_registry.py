"""The collector registry snapshot() draws from: built-ins, registered ones, entry points.

The vocabulary (Collector, CollectorUnavailable, costs) lives in ``memscope._base.collector``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ._base.collector import COSTS, Collector
from ._base.section import Section
from ._base.validate import check_choice, check_str

_lock = threading.RLock()
_collectors: dict[str, Collector] = {}
_section_types: dict[str, type[Section]] = {}
_load_errors: dict[str, str] = {}
_builtins_loaded = False
_entry_points_loaded = False

ENTRY_POINT_GROUP = "memscope.collectors"


def _check(collector: object) -> Collector:
    name = check_str("collector.name", getattr(collector, "name", None))
    if not name.isidentifier():
        raise ValueError(f"collector.name must be a Python identifier, got {name!r}")
    check_choice("collector.cost", getattr(collector, "cost", None), COSTS)
    if not callable(getattr(collector, "collect", None)):
        raise TypeError(f"collector {name!r} has no callable collect()")
    return collector  # type: ignore[return-value]


def register_collector(collector: Collector, *, replace: bool = False) -> Collector:
    """Add a collector to the registry; ``replace=True`` overrides one of the same name."""
    checked = _check(collector)
    _ensure_loaded()
    with _lock:
        if checked.name in _collectors and not replace:
            raise ValueError(
                f"a collector named {checked.name!r} is already registered; "
                "pass replace=True to override it"
            )
        _add(checked)
    return checked


def _add(collector: Collector) -> None:
    """Put a collector and its section type (or none: a replaced one's goes) in the registry."""
    _collectors[collector.name] = collector
    _section_types.pop(collector.name, None)
    st = getattr(collector, "section_type", None)
    if isinstance(st, type) and issubclass(st, Section):
        _section_types[collector.name] = st


def unregister_collector(name: str) -> None:
    """Remove a collector by name (a missing name raises KeyError)."""
    _ensure_loaded()
    with _lock:
        if name not in _collectors:
            raise KeyError(f"no collector named {name!r}; registered: {sorted(_collectors)}")
        del _collectors[name]
        # its section type goes too: a later collector of this name brings its own
        _section_types.pop(name, None)


def registered_collectors() -> dict[str, Collector]:
    """Name -> collector for every registered collector (built-in and plugged in)."""
    _ensure_loaded()
    with _lock:
        return dict(_collectors)


def entry_point_errors() -> dict[str, str]:
    """Entry points of ``memscope.collectors`` that failed to load, with the reason."""
    _ensure_loaded()
    with _lock:
        return dict(_load_errors)


def section_type(name: str) -> type[Section]:
    """The Section class for a collector name (a generic Section when unknown)."""
    _ensure_loaded()
    with _lock:
        found = _section_types.get(name)
    if found is not None:
        return found
    return type(f"{name.title()}Section", (Section,), {"name": name})


def select(names: Iterable[str] | None, *, deep: bool, tracing: bool) -> list[Collector]:
    """The collectors a snapshot runs: explicit names, or by cost."""
    registry = registered_collectors()
    if names is not None:
        if isinstance(names, str):
            raise TypeError(
                "collectors must be a list of collector names, not a single string "
                f"(did you mean collectors=[{names!r}]?)"
            )
        if not isinstance(names, Iterable):
            raise TypeError(
                f"collectors must be a list of collector names or None, got {type(names).__name__}"
            )
        wanted = list(names)
        strays = [n for n in wanted if not isinstance(n, str)]
        if strays:
            raise TypeError(f"collectors must hold collector names (str), got {strays!r}")
        unknown = [n for n in wanted if n not in registry]
        if unknown:
            raise ValueError(f"collectors: unknown name(s) {unknown}; accepted: {sorted(registry)}")
        return [registry[n] for n in dict.fromkeys(wanted)]
    chosen = []
    for collector in registry.values():
        if (
            collector.cost == "cheap"
            or (collector.cost == "scan" and deep)
            or (collector.cost == "trace" and tracing)
        ):
            chosen.append(collector)
    return chosen


def _ensure_loaded() -> None:
    global _builtins_loaded, _entry_points_loaded
    if _builtins_loaded and _entry_points_loaded:
        return
    with _lock:
        if not _builtins_loaded:
            _builtins_loaded = True
            from .collectors import builtin_collectors

            for collector in builtin_collectors():
                _add(collector)
        if not _entry_points_loaded:
            _entry_points_loaded = True
            _load_entry_points()


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    try:
        eps = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a broken distribution must not break snapshots
        _load_errors["<entry points>"] = f"{type(exc).__name__}: {exc}"
        return
    for ep in eps:
        try:
            obj = ep.load()
            if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "collect")):
                obj = obj()
            collector = _check(obj)
            if collector.name in _collectors:
                raise ValueError(f"name {collector.name!r} is already registered")
            _add(collector)
        except Exception as exc:
            _load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
