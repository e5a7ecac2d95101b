"""The options of a no-growth check (CheckOptions), their validation and the ignore filter."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from memscope._base.validate import check_bool, check_callable, check_choice, check_int, check_str

__all__ = [
    "MAX_ROUNDS",
    "MAX_TOP",
    "OPTION_NAMES",
    "THREAD_SCOPES",
    "Census",
    "CheckOptions",
    "IgnoreSpec",
    "ThreadScope",
    "ignore_predicate",
    "split_options",
]

ThreadScope = Literal["process", "started", "ignore"]
IgnoreSpec = Callable[[str], bool] | str | Iterable[str] | None
#: where the census comes from: type -> (live objects, their shallow bytes)
Census = Callable[[], Mapping[type, tuple[int, int]]]

THREAD_SCOPES = ("process", "started", "ignore")
MAX_ROUNDS = 1000  # readings are pre-allocated: keep the arrays small and the check finite
MAX_TOP = 1000
_MAX_GROWTH = 1 << 40
_MAX_ALLOWED = 1 << 20


def _patterns(ignore: object) -> tuple[str, ...]:
    if isinstance(ignore, str):
        return (ignore,)
    try:
        patterns: tuple[object, ...] = tuple(cast(Iterable[object], ignore))
    except TypeError:
        raise TypeError(
            f"ignore must be a glob pattern, a list of them, or a callable(name) -> bool, "
            f"got {type(ignore).__name__}"
        ) from None
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise TypeError(
                f"ignore[{i}] must be a str pattern, got {type(pattern).__name__}; ignore "
                "accepts a glob pattern, a list of them, or a callable(name) -> bool"
            )
    return cast(tuple[str, ...], patterns)


def ignore_predicate(ignore: IgnoreSpec) -> Callable[[str], bool]:
    """``ignore`` as a predicate on type names and file names (nothing ignored for None)."""
    if ignore is None:
        return lambda name: False
    if callable(ignore):
        return ignore
    patterns = _patterns(ignore)

    def matches(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    return matches


def _clear_hooks(clear: object) -> tuple[Callable[[], object], ...]:
    if callable(clear):
        return (clear,)
    try:
        hooks: tuple[object, ...] = tuple(cast(Iterable[object], clear))
    except TypeError:
        raise TypeError(
            f"clear must be a callable or an iterable of callables, got {type(clear).__name__}"
        ) from None
    for i, func in enumerate(hooks):
        check_callable(f"clear[{i}]", func)
    return cast(tuple[Callable[[], object], ...], hooks)


@dataclass(frozen=True)
class CheckOptions:
    """Validated options of one no-growth check (shared by the functions, context and marker)."""

    warmup: int = 3
    rounds: int = 5
    trace: bool | None = None
    trace_frames: int = 10
    census: bool = True
    ignore: IgnoreSpec = None
    clear: tuple[Callable[[], object], ...] = ()
    threads: ThreadScope = "process"
    min_growth: int = 1
    min_growth_bytes: int = 1
    allow_fds: int = 0
    allow_threads: int = 0
    top: int = 10

    @classmethod
    def build(cls, **kwargs: Any) -> CheckOptions:
        """Validate keyword options: a wrong type is a TypeError, a value out of range a
        ValueError, both naming the option and what it accepts."""
        known = set(cls.__dataclass_fields__)
        for key in kwargs:
            if key not in known:
                raise TypeError(f"unknown no-growth option {key!r}; accepted: {sorted(known)}")
        opts = cls(**kwargs)
        check_int("warmup", opts.warmup, low=0, high=MAX_ROUNDS)
        check_int("rounds", opts.rounds, low=1, high=MAX_ROUNDS)
        check_int("trace_frames", opts.trace_frames, low=1, high=100)
        check_int("min_growth", opts.min_growth, low=1, high=_MAX_GROWTH)
        check_int("min_growth_bytes", opts.min_growth_bytes, low=1, high=_MAX_GROWTH)
        check_int("allow_fds", opts.allow_fds, low=0, high=_MAX_ALLOWED)
        check_int("allow_threads", opts.allow_threads, low=0, high=_MAX_ALLOWED)
        check_int("top", opts.top, low=1, high=MAX_TOP)
        if opts.trace is not None and not isinstance(opts.trace, bool):
            raise TypeError(f"trace must be True, False or None, got {type(opts.trace).__name__}")
        check_bool("census", opts.census)
        check_str("threads", opts.threads)
        check_choice("threads", opts.threads, THREAD_SCOPES)
        # patterns are read once, here: a generator passed as ``ignore`` is not used up later
        ignore = opts.ignore
        if ignore is not None and not callable(ignore):
            object.__setattr__(opts, "ignore", _patterns(ignore))
        object.__setattr__(opts, "clear", _clear_hooks(opts.clear))
        return opts


#: every keyword a check function takes for itself (never passed on to ``fn``)
OPTION_NAMES = frozenset(CheckOptions.__dataclass_fields__) | {"census_source"}


def split_options(kwargs: dict[str, Any]) -> tuple[CheckOptions, Census | None]:
    """The validated options and the census source out of a check function's keywords."""
    census = kwargs.pop("census_source", None)
    check_callable("census_source", census, optional=True)
    return CheckOptions.build(**kwargs), census
