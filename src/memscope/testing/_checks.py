"""The public checks: assert_no_growth, assert_no_growth_async and the one-shot no_growth.

Options and ``fn``'s arguments never collide silently: options are keyword-only
parameters of each check, every other keyword goes to ``fn``, and an option passed by
name that is also a parameter of ``fn`` (read with ``inspect.signature`` where it can
be) is a TypeError telling to give ``fn`` its argument with ``functools.partial``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from memscope._base.errors import MemoryGrowthError
from memscope._base.validate import check_callable

from ._driver import check_steps, run_check, run_check_async
from ._options import OPTION_NAMES, Census, IgnoreSpec, ThreadScope, split_options
from ._report import GrowthReport

__all__ = ["NoGrowthCheck", "assert_no_growth", "assert_no_growth_async", "no_growth"]

P = ParamSpec("P")
R = TypeVar("R")


def _label_of(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return str(name)


def _keyword_parameters(fn: object) -> set[str]:
    """The names ``fn`` takes by keyword and has not had bound by functools.partial."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    # a partial lists its bound keywords as parameters: they are fn's already, not a clash
    bound = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    return {p.name for p in params if p.kind in kinds} - bound


def refuse_collisions(check: str, fn: object, passed: Iterable[str]) -> None:
    """TypeError when an option passed to ``check`` is also a parameter of ``fn``."""
    options = [name for name in passed if name in OPTION_NAMES]
    if not options:
        return
    clash = sorted(set(options) & _keyword_parameters(fn))
    if not clash:
        return
    label = _label_of(fn)
    names = ", ".join(repr(name) for name in clash)
    raise TypeError(
        f"{check}(): {names} is both an option of {check}() and a parameter of {label}; "
        f"options never reach fn, so pass fn's argument with "
        f"functools.partial({label}, {clash[0]}=...) and the option to {check}()"
    )


def _options_apart(check: Callable[P, R]) -> Callable[P, R]:
    """Refuse, before anything runs, an option passed by name that ``fn`` also takes."""

    @functools.wraps(check)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        if args:
            refuse_collisions(check.__name__, args[0], kwargs)
        return check(*args, **kwargs)

    return checked


def _options_apart_async(
    like: Callable[P, object],
) -> Callable[[Callable[..., Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """:func:`_options_apart` for a coroutine function that takes the parameters of ``like``.

    The async check's options are the sync check's, so they are written once, in the sync
    signature: type checkers read them through ``P``, help() and inspect through
    ``__signature__``, and the coroutine function gets them all in ``**kwargs``.
    """

    def apply(check: Callable[..., Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        import inspect

        @functools.wraps(check)
        async def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            if args:
                refuse_collisions(check.__name__, args[0], kwargs)
            return await check(*args, **kwargs)

        vars(checked)["__signature__"] = inspect.signature(like)
        return checked

    return apply


def _raise_if_leaked(report: GrowthReport) -> GrowthReport:
    if report.leaked:
        raise MemoryGrowthError(report.format(), report)
    return report


def _is_async_callable(fn: object) -> bool:
    import inspect

    dunder_call = getattr(type(fn), "__call__", None)  # noqa: B004  (an async __call__)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(dunder_call)


def _finish_loop(loop: Any) -> None:
    import asyncio

    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


@_options_apart
def assert_no_growth(
    fn: Callable[..., object],
    /,
    *args: Any,
    warmup: int = 3,
    rounds: int = 5,
    trace: bool | None = None,
    trace_frames: int = 10,
    census: bool = True,
    ignore: IgnoreSpec = None,
    clear: Callable[[], object] | Iterable[Callable[[], object]] = (),
    threads: ThreadScope = "process",
    min_growth: int = 1,
    min_growth_bytes: int = 1,
    allow_fds: int = 0,
    allow_threads: int = 0,
    top: int = 10,
    max_rounds: int = 60,
    screen: bool = True,
    census_source: Census | None = None,
    **kwargs: Any,
) -> GrowthReport:
    """Call ``fn(*args, **kwargs)`` warmup + rounds times; raise MemoryGrowthError if it leaks.

    The options are keyword-only and never passed to ``fn``; naming one that is also a
    parameter of ``fn`` raises TypeError (give ``fn`` that argument with functools.partial).
    """
    check_callable("fn", fn)
    # the options are this check's parameters: gathered by name, never listed again here
    opts, source = split_options(locals())
    label = _label_of(fn)
    if not _is_async_callable(fn):

        def call(i: int) -> object:
            import inspect

            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if callable(close):
                    close()  # it will never be awaited: close it so it does not warn
                raise TypeError(
                    f"{label} returned an awaitable, which assert_no_growth would never "
                    "run: pass the async function itself (with functools.partial for its "
                    "arguments), or use assert_no_growth_async inside a running loop"
                )
            return result

        return _raise_if_leaked(run_check(call, opts, label=label, census=source))
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "assert_no_growth() cannot run an async fn inside a running event loop; "
            "use `await memscope.testing.assert_no_growth_async(fn, ...)` there"
        )
    # one loop for every round: asyncio.run() per round would cancel a leaked task and hide it
    loop = asyncio.new_event_loop()
    try:
        report = run_check(
            lambda i: loop.run_until_complete(cast(Awaitable[object], fn(*args, **kwargs))),
            opts,
            label=label,
            census=source,
            loop=loop,
        )
    finally:
        _finish_loop(loop)
    return _raise_if_leaked(report)


@_options_apart_async(like=assert_no_growth)
async def assert_no_growth_async(
    fn: Callable[..., Awaitable[object] | object], /, *args: Any, **kwargs: Any
) -> GrowthReport:
    """In a running loop: await ``fn`` warmup + rounds times; raise MemoryGrowthError on a leak.

    Options and their rule are those of :func:`assert_no_growth`, whose signature this
    check takes as its own. Tasks ``fn`` leaves pending stay on the caller's loop
    (memscope does not cancel tasks it does not own).
    """
    check_callable("fn", fn)
    opts, source = split_options(kwargs)
    kwargs = {name: value for name, value in kwargs.items() if name not in OPTION_NAMES}
    report = await run_check_async(
        lambda i: fn(*args, **kwargs), opts, label=_label_of(fn), census=source
    )
    return _raise_if_leaked(report)


class NoGrowthCheck:
    """What :func:`no_growth` yields: ``report`` is set when the block exits."""

    def __init__(self) -> None:
        self.report: GrowthReport | None = None


@contextmanager
def no_growth(
    *,
    label: str = "block",
    trace: bool | None = None,
    trace_frames: int = 10,
    census: bool = True,
    ignore: IgnoreSpec = None,
    clear: Callable[[], object] | Iterable[Callable[[], object]] = (),
    threads: ThreadScope = "process",
    min_growth: int = 1,
    min_growth_bytes: int = 1,
    allow_fds: int = 0,
    allow_threads: int = 0,
    top: int = 10,
    max_rounds: int = 60,
    screen: bool = True,
    census_source: Census | None = None,
) -> Iterator[NoGrowthCheck]:
    """One-shot check of a block (the weaker check: one round cannot tell a cache from a leak).

    Anything the block leaves behind counts, including caches it fills the first time;
    prefer :func:`assert_no_growth`, which repeats the code, whenever it can be called twice.
    """
    # one run and no warmup make it one-shot; the rest are this function's parameters
    opts, source = split_options({**locals(), "warmup": 0, "rounds": 1})
    check = NoGrowthCheck()
    # the block is the one run; it cannot be rerun, so no traced pass (tracing is inline)
    steps = check_steps(
        opts, label=label, census=source, inline_trace=opts.trace is not False, rerun=False
    )
    next(steps)  # the baseline reading, then the request for run 1: the block
    try:
        yield check
    except BaseException:
        steps.close()  # the block's own exception goes on; the probe stops tracing
        raise
    try:
        steps.send(None)
    except StopIteration as stop:
        check.report = cast(GrowthReport, stop.value)
    else:  # pragma: no cover - a one-round check without rerun asks for one run only
        steps.close()
        raise RuntimeError("no_growth: the check asked for a second run")
    _raise_if_leaked(check.report)
