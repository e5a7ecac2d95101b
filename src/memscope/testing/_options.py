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


_IGNORE_ACCEPTS = "a glob pattern, a list of them, or a callable(name) -> bool"


def _one_or_many(
    name: str, value: object, one: Callable[[object], bool], accepts: str
) -> tuple[object, ...]:
    """``value`` as a tuple: itself alone if ``one(value)``, else its items, read once."""
    if one(value):
        return (value,)
    try:
        return tuple(cast(Iterable[object], value))
    except TypeError:
        raise TypeError(f"{name} must be {accepts}, got {type(value).__name__}") from None


def _patterns(ignore: object) -> tuple[str, ...]:
    patterns = _one_or_many("ignore", ignore, lambda v: isinstance(v, str), _IGNORE_ACCEPTS)
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise TypeError(
                f"ignore[{i}] must be a str pattern, got {type(pattern).__name__}; "
                f"ignore accepts {_IGNORE_ACCEPTS}"
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
    hooks = _one_or_many("clear", clear, callable, "a callable or an iterable of callables")
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
    max_rounds: int = 60
    screen: bool = True

    @property
    def round_bound(self) -> int:
        """The most measured rounds a check takes while its series are unclear."""
        return max(self.rounds, self.max_rounds)

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
        check_int("max_rounds", opts.max_rounds, low=1, high=MAX_ROUNDS)
        check_bool("screen", opts.screen)
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


def split_options(values: Mapping[str, Any]) -> tuple[CheckOptions, Census | None]:
    """The validated options and the census source among ``values``.

    ``values`` are a check's keywords or its ``locals()``: one way to gather the options
    for every check, where names that are not options (``fn``, its arguments, ``label``)
    are left alone.
    """
    options = {name: values[name] for name in OPTION_NAMES if name in values}
    census = options.pop("census_source", None)
    check_callable("census_source", census, optional=True)
    return CheckOptions.build(**options), census
