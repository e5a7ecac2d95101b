"""@bounded_cache: memoise a sync or async function in a BoundedCache, single flight per key."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar, cast, overload

from .._base.validate import check_bool, check_str
from .cache import BoundedCache, EvictReason, _check_config

__all__ = ["CacheInfo", "bounded_cache"]

F = TypeVar("F", bound=Callable[..., Any])


class CacheInfo(NamedTuple):
    """Like ``functools._CacheInfo``: what a @bounded_cache function's ``cache_info()`` returns."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


_KWARGS_MARK = object()
_FAST_TYPES = frozenset({int, str})


def _make_key(args: tuple[Any, ...], kwargs: dict[str, Any], typed: bool) -> Hashable:
    if not kwargs and len(args) == 1 and type(args[0]) in _FAST_TYPES and not typed:
        return cast(Hashable, args[0])
    key: tuple[Any, ...] = args
    if kwargs:
        key += (_KWARGS_MARK, *kwargs.items())
    if typed:
        key += tuple(type(a) for a in args)
        if kwargs:
            key += tuple(type(v) for v in kwargs.values())
    return key


@overload
def bounded_cache(maxsize: F, /) -> F: ...


@overload
def bounded_cache(
    maxsize: int = 128,
    ttl: float | None = None,
    max_bytes: int | None = None,
    *,
    typed: bool = False,
    getsizeof: Callable[[Any, Any], int] | None = None,
    timer: Callable[[], float] = time.monotonic,
    on_evict: Callable[[Any, Any, EvictReason], object] | None = None,
    name: str | None = None,
) -> Callable[[F], F]: ...


def bounded_cache(
    maxsize: int | Callable[..., Any] = 128,
    ttl: float | None = None,
    max_bytes: int | None = None,
    *,
    typed: bool = False,
    getsizeof: Callable[[Any, Any], int] | None = None,
    timer: Callable[[], float] = time.monotonic,
    on_evict: Callable[[Any, Any, EvictReason], object] | None = None,
    name: str | None = None,
) -> Any:
    """Memoise a sync or async function in a BoundedCache (``fn.cache``), single flight per key.

    The cache is named ``name``, else after the function (``module.qualname``).
    """
    if callable(maxsize) and not isinstance(maxsize, int):
        # used bare: @bounded_cache
        return bounded_cache()(maxsize)
    check_bool("typed", typed)
    # validate now, at decoration time, rather than at the first call
    _check_config(maxsize, ttl, max_bytes, getsizeof, timer, on_evict)
    check_str("name", name, optional=True)

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError(f"bounded_cache decorates a callable, got {func!r}")
        cache: BoundedCache[Any, Any] = BoundedCache(
            maxsize,
            ttl,
            max_bytes,
            getsizeof=getsizeof,
            timer=timer,
            on_evict=on_evict,
            name=name or _callable_name(func),
        )
        return _wrap(func, cache, typed)

    return decorate


def _callable_name(func: Any) -> str:
    """module.qualname for functions; something readable for partials and callable objects."""
    target = getattr(func, "func", func)  # functools.partial
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{getattr(target, '__module__', None) or type(target).__module__}.{qual}"


def _is_async(func: Any) -> bool:
    import inspect

    # an instance whose class has an async __call__ is an async callable too
    dunder_call = getattr(type(func), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(dunder_call)


def _wrap(func: F, cache: BoundedCache[Any, Any], typed: bool) -> F:
    import inspect

    wrapper: Any
    if _is_async(func):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = _make_key(args, kwargs, typed)
            return await cache.aget_or_set(key, functools.partial(func, *args, **kwargs))

    else:
        get_or_call = cache._get_or_call

        def call(*args: Any, **kwargs: Any) -> Any:
            value = func(*args, **kwargs)
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if callable(close):
                    close()  # never awaited: close it so it does not warn
                raise TypeError(
                    f"{_callable_name(func)} returned an awaitable; @bounded_cache caches "
                    "results, never coroutines: make it an async def so results are awaited"
                )
            return value

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return get_or_call(_make_key(args, kwargs, typed), call, args, kwargs)

    def cache_info() -> CacheInfo:
        s = cache.stats()
        return CacheInfo(s.hits, s.misses, cache.maxsize, s.entries)

    def cache_clear() -> None:
        cache.clear()
        cache._reset_stats()

    functools.update_wrapper(wrapper, func)
    wrapper.cache = cache
    wrapper.cache_info = cache_info
    wrapper.cache_clear = cache_clear
    wrapper.cache_parameters = lambda: {
        "maxsize": cache.maxsize,
        "ttl": cache.ttl,
        "max_bytes": cache.max_bytes,
        "typed": typed,
    }
    return cast(F, wrapper)
