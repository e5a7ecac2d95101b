"""Prove that code does not leak: :func:`assert_no_growth` and the one-shot :func:`no_growth`.

The method is the one CPython's own test runner uses for reference leaks (``-R``),
made to work on a normal build: run the code ``warmup`` times, then ``rounds``
measured times; before every reading clear the interpreter's known caches and
collect garbage, then read allocated blocks, open file descriptors, live threads,
pending asyncio tasks, a complete census of objects by type and (when tracing)
tracemalloc's traced bytes. Memory leaks only when it grew on *every* measured
round; file descriptors and threads leak on any growth. See ``docs/testing.md``.
"""

from __future__ import annotations

import fnmatch
import gc
import inspect
import os
import sys
import threading
import time
import warnings
from array import array
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar, cast

from ._base.errors import MemoryGrowthError

__all__ = [
    "AllocationSite",
    "GrowthReport",
    "TypeGrowth",
    "assert_no_growth",
    "assert_no_growth_async",
    "clear_interpreter_caches",
    "no_growth",
]

T = TypeVar("T")

ThreadScope = Literal["process", "started", "ignore"]
IgnoreSpec = Callable[[str], bool] | str | Iterable[str] | None
Census = Callable[[], Mapping[type, tuple[int, int]]]

_THREAD_SCOPES = ("process", "started", "ignore")
MAX_ROUNDS = 1000  # readings are pre-allocated: keep the arrays small and the check finite
MAX_TOP = 1000

# frames that belong to the harness, never to the code under test
_HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------- report


@dataclass
class TypeGrowth:
    """One type's per-round count deltas, its count at the end and its size change."""

    type: str
    deltas: list[int]
    count: int
    size_bytes_delta: int
    unit: str = "objects"  # what ``deltas`` count: "objects", or "bytes" for in-place growth

    def format(self) -> str:
        """One line for the report."""
        from ._base.units import format_bytes

        steps = " ".join(f"{d:+d}" for d in self.deltas)
        unit = " bytes" if self.unit == "bytes" else ""
        return (
            f"{self.type}: {steps}{unit}  (now {self.count:,} objects, "
            f"{format_bytes(self.size_bytes_delta)} over the measured rounds)"
        )


@dataclass
class AllocationSite:
    """A tracemalloc allocation site whose memory grew over the measured rounds."""

    filename: str
    lineno: int
    size_bytes_delta: int
    count_delta: int
    traceback: list[str] = field(default_factory=list)

    def format(self) -> str:
        """The site line then its traceback (most recent call last)."""
        from ._base.units import format_bytes

        head = (
            f"{format_bytes(self.size_bytes_delta)} in {self.count_delta:+d} blocks  "
            f"{self.filename}:{self.lineno}"
        )
        return "\n".join([head, *("  " + line for line in self.traceback)])


@dataclass
class GrowthReport:
    """Everything a no-growth check measured and concluded; ``to_dict()`` is JSON-safe."""

    label: str
    warmup: int
    rounds: int
    deltas: dict[str, list[int]]
    failures: list[str]
    grew: list[TypeGrowth]
    ignored: list[TypeGrowth]
    noise: list[str]
    sites: list[AllocationSite]
    census: bool
    tracing: bool
    seconds: float
    #: types whose objects did not multiply but grew in place (a buffer appended to)
    grew_bytes: list[TypeGrowth] = field(default_factory=list)

    @property
    def leaked(self) -> bool:
        """True when at least one leak rule fired."""
        return bool(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the report."""
        data = asdict(self)
        data["leaked"] = self.leaked
        return data

    def format(self, top: int = 10) -> str:
        """The human-readable report that :class:`MemoryGrowthError` carries."""
        verdict = "LEAK" if self.leaked else "no leak"
        lines = [
            f"memscope no-growth check of {self.label}: {verdict} "
            f"({self.warmup} warmup + {self.rounds} measured rounds, {self.seconds:.2f} s)"
        ]
        for reason in self.failures:
            lines.append(f"  ! {reason}")
        lines.append("  per-round deltas:")
        for key, values in self.deltas.items():
            steps = " ".join(f"{v:+d}" for v in values)
            lines.append(f"    {_METRIC_NAMES.get(key, key):<22} {steps}")
        if self.grew:
            lines.append("  types that grew every round:")
            lines.extend(f"    {row.format()}" for row in self.grew[:top])
            if len(self.grew) > top:
                lines.append(f"    ... and {len(self.grew) - top} more")
        if self.grew_bytes:
            lines.append("  types whose bytes grew every round (objects growing in place):")
            lines.extend(f"    {row.format()}" for row in self.grew_bytes[:top])
        if self.ignored:
            lines.append("  ignored types that grew every round:")
            lines.extend(f"    {row.format()}" for row in self.ignored[:top])
        if self.noise:
            lines.append("  noise (changed, but not every round: not a leak):")
            lines.extend(f"    {item}" for item in self.noise[:top])
        if self.sites:
            lines.append("  top allocation sites of the growth (tracemalloc):")
            for site in self.sites[:top]:
                lines.extend("    " + line for line in site.format().splitlines())
        elif self.leaked and not self.tracing:
            lines.append("  (allocation sites not named: tracing was off for this check)")
        if not self.census:
            lines.append("  (census off: object counts by type were not read)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


_METRIC_NAMES = {
    "blocks": "allocated blocks",
    "fds": "open file descriptors",
    "threads": "threads",
    "tasks": "asyncio tasks",
    "traced_bytes": "traced bytes",
}


# --------------------------------------------------------------------------- sources


def _clear_abc_caches() -> None:
    seen: set[int] = set()
    roots: list[type] = []
    for name in ("collections.abc", "numbers", "io", "contextlib", "os"):
        mod = sys.modules.get(name)
        if mod is None:
            continue
        for value in vars(mod).values():
            if isinstance(value, type) and hasattr(value, "_abc_caches_clear"):
                roots.append(value)
    # bounded walk: a service with a huge class tree still clears in finite time
    while roots and len(seen) < 20_000:
        cls = roots.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        clear = getattr(cls, "_abc_caches_clear", None)
        if clear is not None:
            with suppress(Exception):
                clear()
        try:
            roots.extend(type.__subclasses__(cls))
        except TypeError:
            continue


def clear_interpreter_caches() -> None:
    """Clear the caches of already-imported stdlib modules that fill on first use."""
    mods = sys.modules
    # only modules already loaded: importing one here would itself look like growth
    calls: list[tuple[str, str]] = [
        ("re", "purge"),
        ("struct", "_clearcache"),
        ("linecache", "clearcache"),
        ("urllib.parse", "clear_cache"),
        ("importlib", "invalidate_caches"),
    ]
    for modname, attr in calls:
        mod = mods.get(modname)
        func = getattr(mod, attr, None) if mod is not None else None
        if callable(func):
            with suppress(Exception):
                func()
    typing_mod = mods.get("typing")
    for cleanup in getattr(typing_mod, "_cleanups", ()):
        with suppress(Exception):
            cleanup()
    fnmatch_mod = mods.get("fnmatch")
    compiled = getattr(fnmatch_mod, "_compile_pattern", None)
    if compiled is not None and hasattr(compiled, "cache_clear"):
        compiled.cache_clear()
    inspect_mod = mods.get("inspect")
    for name in ("_filesbymodname", "modulesbyfile"):
        cache = getattr(inspect_mod, name, None)
        if isinstance(cache, dict):
            cache.clear()
    _clear_abc_caches()
    for name in ("_clear_internal_caches", "_clear_type_cache"):
        func = getattr(sys, name, None)
        if callable(func):
            func()
            break


def _count_fds() -> int:
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        return int(psutil.Process().num_fds())
    except Exception:
        return -1


def _pending_tasks(loop: Any = None) -> int:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return 0
    if loop is not None:
        return sum(1 for t in asyncio.all_tasks(loop) if not t.done())
    # every loop's tasks, running or not (pytest-asyncio closes a loop per test)
    registries = [getattr(asyncio.tasks, name, None) for name in ("_all_tasks", "_scheduled_tasks")]
    found = 0
    for registry in registries:
        if registry is None:
            continue
        found += sum(1 for t in list(registry) if not t.done())
    eager = getattr(asyncio.tasks, "_eager_tasks", None)
    if eager is not None:
        found += sum(1 for t in list(eager) if not t.done())
    return found


def _format_traceback(traceback: Iterable[Any], limit: int) -> list[str]:
    """Frames oldest first, the harness's own frames left out, each with its source line."""
    import linecache

    frames = [f for f in traceback if not f.filename.startswith(_HERE + os.sep)]
    lines: list[str] = []
    for frame in frames[-limit:]:
        lines.append(f'File "{frame.filename}", line {frame.lineno}')
        source = linecache.getline(frame.filename, frame.lineno).strip()
        if source:
            lines.append(f"  {source}")
    return lines


def _type_name(tp: type) -> str:
    mod = getattr(tp, "__module__", None) or "?"
    qual = getattr(tp, "__qualname__", None) or getattr(tp, "__name__", "?")
    return str(qual) if mod == "builtins" else f"{mod}.{qual}"


def _default_census() -> Mapping[type, tuple[int, int]]:
    from .collectors._heap import count_types

    return count_types(complete=True)


def _ignore_predicate(ignore: IgnoreSpec) -> Callable[[str], bool]:
    if ignore is None:
        return lambda name: False
    if callable(ignore):
        return ignore
    patterns = [ignore] if isinstance(ignore, str) else list(ignore)
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise TypeError(
                f"ignore[{i}] must be a str pattern, got {type(pattern).__name__}; ignore "
                "accepts a glob pattern, a list of them, or a callable(name) -> bool"
            )

    def matches(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    return matches


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return value


@dataclass(frozen=True)
class CheckOptions:
    """Validated options of one no-growth check (shared by the function, context and marker)."""

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
        """Validate keyword options, naming the argument and what it accepts on error."""
        known = set(cls.__dataclass_fields__)
        for key in kwargs:
            if key not in known:
                raise TypeError(f"unknown no-growth option {key!r}; accepted: {sorted(known)}")
        opts = cls(**kwargs)
        _check_int("warmup", opts.warmup, 0, MAX_ROUNDS)
        _check_int("rounds", opts.rounds, 1, MAX_ROUNDS)
        _check_int("trace_frames", opts.trace_frames, 1, 100)
        _check_int("min_growth", opts.min_growth, 1, 1 << 40)
        _check_int("min_growth_bytes", opts.min_growth_bytes, 1, 1 << 40)
        _check_int("allow_fds", opts.allow_fds, 0, 1 << 20)
        _check_int("allow_threads", opts.allow_threads, 0, 1 << 20)
        _check_int("top", opts.top, 1, MAX_TOP)
        if opts.trace is not None and not isinstance(opts.trace, bool):
            raise TypeError(f"trace must be True, False or None, got {opts.trace!r}")
        if opts.threads not in _THREAD_SCOPES:
            raise ValueError(f"threads must be one of {_THREAD_SCOPES}, got {opts.threads!r}")
        clear = opts.clear
        if callable(clear):
            clear = (clear,)
        clear = tuple(clear)
        for i, func in enumerate(clear):
            if not callable(func):
                raise TypeError(f"clear[{i}] must be callable, got {type(func).__name__}")
        _ignore_predicate(opts.ignore)  # validates the patterns now, not after the rounds
        object.__setattr__(opts, "clear", clear)
        return opts


# --------------------------------------------------------------------------- the probe


class _Probe:
    """Takes the readings; everything it keeps is pre-allocated, so it does not grow itself.

    Per-round memory deltas are ``blocks before the next reading`` minus ``blocks after
    this reading's bookkeeping`` (both right after a full collection), so whatever the
    probe allocates for itself falls outside every measured interval.
    """

    def __init__(
        self,
        opts: CheckOptions,
        *,
        census: Census | None,
        loop: Any = None,
        tasks: Callable[[], int] | None = None,
        inline_trace: bool = False,
    ) -> None:
        n = opts.warmup + opts.rounds + 1
        self.opts = opts
        self.n = n
        self.loop = loop
        self.tasks_source = tasks
        self.inline_trace = inline_trace
        self.census_fn = census if opts.census else None
        zeros = bytes(8 * n)
        self.blocks_before = array("q", zeros)  # read first thing, after collecting
        self.blocks_after = array("q", zeros)  # read after the probe's own bookkeeping
        self.fds = array("q", zeros)
        self.threads = array("q", zeros)
        self.tasks = array("q", zeros)
        self.traced = array("q", zeros)
        self.thread_base: set[int] = set()
        # census state: type -> slot, then counts/sizes by slot; per-round deltas by slot
        self.index: dict[type, int] = {}
        self.prev = array("q")
        self.cur = array("q")
        self.base_sizes = array("q")
        self.last_sizes = array("q")
        self.hist = [array("q") for _ in range(opts.rounds)]
        self.prev_sizes = array("q")
        self.cur_sizes = array("q")
        self.hist_sizes = [array("q") for _ in range(opts.rounds)]
        self.base_counts = array("q")
        self.started_tracing = False
        self.tracing = False
        self.trace_start: Any = None
        self.census_error: str | None = None

    def settle(self) -> None:
        _settle(self.opts)

    def _thread_count(self) -> int:
        mode = self.opts.threads
        if mode == "ignore":
            return 0
        if mode == "started":
            return sum(1 for t in threading.enumerate() if t.ident not in self.thread_base)
        return threading.active_count()

    def begin(self) -> None:
        """Called once before the first run."""
        self.thread_base.update(t.ident for t in threading.enumerate() if t.ident is not None)
        if self.census_fn is not None and self.opts.warmup == 0:
            # no warmup reading to settle the census (its first import, the probe's type
            # index) before the baseline: a priming census does it
            self._census(-1)
        self.read(0)

    def read(self, i: int) -> None:
        """Reading ``i`` (0 before the first run, ``i`` after run ``i``)."""
        opts = self.opts
        self.settle()
        self.blocks_before[i] = sys.getallocatedblocks()
        self.fds[i] = _count_fds()
        self.threads[i] = self._thread_count()
        self.tasks[i] = (
            self.tasks_source() if self.tasks_source is not None else _pending_tasks(self.loop)
        )
        if i == opts.warmup and self.inline_trace:
            # the start snapshot is taken before the census so every census sees it
            if not self.tracing:
                self._start_tracing()
            if self.tracing:
                import tracemalloc

                self.trace_start = tracemalloc.take_snapshot()
        if self.tracing:
            import tracemalloc

            self.traced[i] = tracemalloc.get_traced_memory()[0]
        # the census is the slow reading: from the last warmup reading on is all the verdict
        # needs (that one only settles the probe's own index before the baseline)
        if self.census_fn is not None and self.census_error is None and i >= opts.warmup - 1:
            self._census(i)
        if self.inline_trace and i == opts.warmup - 1:
            # trace the last warmup run too, so the first measured round starts steady
            self._start_tracing()
        self.settle()
        self.blocks_after[i] = sys.getallocatedblocks()

    def _start_tracing(self) -> None:
        import tracemalloc

        if tracemalloc.is_tracing():
            self.tracing = True
        elif self.opts.trace:
            tracemalloc.start(self.opts.trace_frames)
            self.started_tracing = True
            self.tracing = True

    def _census(self, i: int) -> None:
        try:
            now = self.census_fn()  # type: ignore[misc]
        except Exception as exc:  # the census is evidence, not a requirement
            self.census_error = f"{type(exc).__name__}: {exc}"
            return
        # the probe's own arrays are in the census too: take them out, so that filling
        # its rows (or a new type's slot) never reads as the code under test growing
        own = self._own_arrays()
        counted = now.get(array)
        if counted is not None:
            now = dict(now)
            now[array] = (
                counted[0] - len(own),
                counted[1] - sum(map(sys.getsizeof, own)),
            )
        index = self.index
        cur = self.cur
        cur_sizes = self.cur_sizes
        size_now: dict[int, int] = {}
        del cur[:]
        cur.frombytes(bytes(8 * len(index)))
        del cur_sizes[:]
        cur_sizes.frombytes(bytes(8 * len(index)))
        for tp, (count, size) in now.items():
            slot = index.get(tp)
            if slot is None:
                slot = len(index)
                index[tp] = slot
                cur.append(0)
                cur_sizes.append(0)
                for arr in (
                    self.prev,
                    self.prev_sizes,
                    self.base_counts,
                    self.base_sizes,
                    self.last_sizes,
                ):
                    arr.append(0)
                for hist in (self.hist, self.hist_sizes):
                    for arr in hist:
                        if len(arr):
                            arr.append(0)
            cur[slot] = count
            cur_sizes[slot] = size
            size_now[slot] = size
        del now
        warmup = self.opts.warmup
        if i == warmup:
            self.base_counts[:] = cur
            for slot, size in size_now.items():
                self.base_sizes[slot] = size
        if i >= warmup:
            # every round's rows are sized at the baseline and then filled in place, so
            # the probe's own arrays do not grow round by round (they would read as a leak)
            for hist in (self.hist, self.hist_sizes):
                for arr in hist:
                    if len(arr) < len(index):
                        arr.frombytes(bytes(8 * (len(index) - len(arr))))
        if i > warmup:
            k = i - warmup - 1
            for row, now_, before in (
                (self.hist[k], cur, self.prev),
                (self.hist_sizes[k], cur_sizes, self.prev_sizes),
            ):
                for slot in range(len(now_)):
                    row[slot] = now_[slot] - before[slot]
            if i == self.n - 1:
                for slot in range(len(self.last_sizes)):
                    self.last_sizes[slot] = size_now.get(slot, 0)
        del size_now
        self.prev, self.cur = cur, self.prev
        self.prev_sizes, self.cur_sizes = cur_sizes, self.prev_sizes

    def _own_arrays(self) -> list[array[int]]:
        return [
            self.blocks_before,
            self.blocks_after,
            self.fds,
            self.threads,
            self.tasks,
            self.traced,
            self.prev,
            self.cur,
            self.prev_sizes,
            self.cur_sizes,
            self.base_counts,
            self.base_sizes,
            self.last_sizes,
            *self.hist,
            *self.hist_sizes,
        ]

    # ----------------------------------------------------------------- verdict

    def finish(self, label: str, seconds: float) -> GrowthReport:
        """Apply the verdict rules to the readings and build the report."""
        opts = self.opts
        w, r = opts.warmup, opts.rounds
        measured = range(w + 1, w + r + 1)
        ignored = _ignore_predicate(opts.ignore)
        deltas: dict[str, list[int]] = {
            "blocks": [self.blocks_before[i] - self.blocks_after[i - 1] for i in measured],
        }
        fds_known = self.fds[0] >= 0
        if fds_known:
            deltas["fds"] = [self.fds[i] - self.fds[i - 1] for i in measured]
        if opts.threads != "ignore":
            deltas["threads"] = [self.threads[i] - self.threads[i - 1] for i in measured]
        deltas["tasks"] = [self.tasks[i] - self.tasks[i - 1] for i in measured]
        if self.tracing:
            deltas["traced_bytes"] = [self.traced[i] - self.traced[i - 1] for i in measured]

        grew: list[TypeGrowth] = []
        grew_bytes: list[TypeGrowth] = []
        skipped: list[TypeGrowth] = []
        noise: list[str] = []
        if self.index:
            names = {slot: tp for tp, slot in self.index.items()}
            end = self.prev  # counts at the last reading
            changed: list[tuple[int, str, list[int]]] = []
            for slot, tp in names.items():
                steps = [self.hist[k][slot] if slot < len(self.hist[k]) else 0 for k in range(r)]
                if all(step >= opts.min_growth for step in steps):
                    row = TypeGrowth(
                        type=_type_name(tp),
                        deltas=steps,
                        count=int(end[slot]),
                        size_bytes_delta=int(self.last_sizes[slot] - self.base_sizes[slot]),
                    )
                    (skipped if ignored(row.type) else grew).append(row)
                    continue
                # as many objects, but bigger every round: a buffer, str or list growing
                # in place (bytearray +=, text +=) leaks without a new object or block
                sizes = [
                    self.hist_sizes[k][slot] if slot < len(self.hist_sizes[k]) else 0
                    for k in range(r)
                ]
                # (a size can step up twice by chance, a dict resizing: at least 3 rounds)
                if r >= 3 and all(step >= opts.min_growth_bytes for step in sizes):
                    row = TypeGrowth(
                        type=_type_name(tp),
                        deltas=sizes,
                        count=int(end[slot]),
                        size_bytes_delta=int(self.last_sizes[slot] - self.base_sizes[slot]),
                        unit="bytes",
                    )
                    (skipped if ignored(row.type) else grew_bytes).append(row)
                elif any(steps):
                    changed.append((sum(abs(s) for s in steps), _type_name(tp), steps))
            grew.sort(key=lambda row: (-sum(row.deltas), row.type))
            skipped.sort(key=lambda row: (-sum(row.deltas), row.type))
            changed.sort(key=lambda item: (-item[0], item[1]))
            for _, name, steps in changed[: opts.top]:
                noise.append(f"{name}: " + " ".join(f"{s:+d}" for s in steps))
            del names, changed

        failures: list[str] = []
        sites = self._sites(ignored) if self.tracing and self.trace_start is not None else []
        blocks = deltas["blocks"]
        if all(d >= opts.min_growth for d in blocks):
            explained = bool(skipped) and not grew
            if explained:
                noise.insert(0, "allocated blocks grew every round, explained by ignored types")
            else:
                failures.append(
                    f"allocated blocks grew on every measured round (+{sum(blocks)} in {r} rounds)"
                )
        elif any(blocks):
            noise.insert(0, "allocated blocks: " + " ".join(f"{d:+d}" for d in blocks))
        if grew:
            shown = ", ".join(row.type for row in grew[:5])
            failures.append(f"{len(grew)} type(s) grew on every measured round: {shown}")
        if grew_bytes:
            grew_bytes.sort(key=lambda row: (-sum(row.deltas), row.type))
            shown = ", ".join(row.type for row in grew_bytes[:5])
            failures.append(
                f"{len(grew_bytes)} type(s) grew in bytes on every measured round "
                f"(objects growing in place): {shown}"
            )
        for key, allowed, what in (
            ("fds", opts.allow_fds, "open file descriptors"),
            ("threads", opts.allow_threads, "threads"),
        ):
            found = deltas.get(key)
            if found is None:
                continue
            if sum(found) > allowed:
                failures.append(f"{what} grew by {sum(found)} over {r} rounds (allowed {allowed})")
            elif any(found):
                noise.append(f"{what}: " + " ".join(f"{s:+d}" for s in found))
        tasks = deltas["tasks"]
        if all(d >= opts.min_growth for d in tasks):
            failures.append(f"pending asyncio tasks grew on every round (+{sum(tasks)})")
        elif any(tasks):
            noise.append("asyncio tasks: " + " ".join(f"{s:+d}" for s in tasks))
        if self.census_error is not None:
            noise.append(f"census unavailable: {self.census_error}")
        return GrowthReport(
            label=label,
            warmup=w,
            rounds=r,
            deltas=deltas,
            failures=failures,
            grew=grew[:MAX_TOP],
            ignored=skipped[:MAX_TOP],
            noise=noise[: opts.top + 8],
            sites=sites,
            census=self.census_fn is not None and self.census_error is None,
            tracing=self.tracing,
            seconds=seconds,
            grew_bytes=grew_bytes[:MAX_TOP],
        )

    def _sites(self, ignored: Callable[[str], bool]) -> list[AllocationSite]:
        import tracemalloc

        return _grown_sites(self.trace_start, tracemalloc.take_snapshot(), self.opts, ignored)

    def close(self) -> None:
        """Stop tracing if the probe started it and drop its state."""
        if self.started_tracing:
            import tracemalloc

            tracemalloc.stop()
            self.started_tracing = False
        self.trace_start = None
        self.index.clear()


def _settle(opts: CheckOptions) -> None:
    clear_interpreter_caches()
    for func in opts.clear:
        func()
    for _ in range(3):
        if not gc.collect():
            break
    if threading.active_count() > 1:
        # other threads may still be finishing what the call started (a server thread
        # answering, a worker exiting): let them run until two readings agree
        seen = (sys.getallocatedblocks(), threading.active_count(), _count_fds())
        for _ in range(_SETTLE_TRIES):
            time.sleep(0.001)  # hands the GIL to them
            now = (sys.getallocatedblocks(), threading.active_count(), _count_fds())
            if now == seen:
                break
            seen = now
            gc.collect()  # what they just dropped


_SETTLE_TRIES = 10


def _drop_warning(*args: object, **kwargs: object) -> None:
    """showwarning for repeated runs: shown once already, not recorded again (see run_check)."""


class _QuietRepeats:
    """Context for runs after the first: warnings are not shown or recorded again.

    pytest records every warning of a test in a list, so a call that warns would add a
    WarningMessage per run and look like a leak. Filters are untouched: "error" still raises.
    """

    def __enter__(self) -> None:
        self._saved = warnings.showwarning
        warnings.showwarning = _drop_warning

    def __exit__(self, *exc: object) -> None:
        warnings.showwarning = self._saved


_RUNNER_PACKAGES = ("_pytest", "pluggy", "pytest_asyncio", "anyio", "xdist")


def _grown_sites(
    start: Any, end: Any, opts: CheckOptions, ignored: Callable[[str], bool]
) -> list[AllocationSite]:
    """Allocation sites that hold more memory in ``end`` than in ``start``, largest first."""
    import tracemalloc

    drop = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, os.path.join(_HERE, "*")),
        # the test runner's own bookkeeping of a rerun test is never the leak
        *(tracemalloc.Filter(False, f"*{os.sep}{pkg}{os.sep}*") for pkg in _RUNNER_PACKAGES),
    ]
    stats = end.filter_traces(drop).compare_to(start.filter_traces(drop), "traceback")
    out: list[AllocationSite] = []
    for stat in stats:
        if stat.size_diff <= 0 or stat.count_diff < 1:
            continue
        frame = stat.traceback[-1] if len(stat.traceback) else None
        if frame is None or ignored(frame.filename):
            continue
        out.append(
            AllocationSite(
                filename=frame.filename,
                lineno=frame.lineno,
                size_bytes_delta=stat.size_diff,
                count_delta=stat.count_diff,
                traceback=_format_traceback(stat.traceback, opts.trace_frames),
            )
        )
    # the sites that grew at least once per round first: those are the leak's
    out.sort(key=lambda site: (site.count_delta < opts.rounds, -site.size_bytes_delta))
    del stats
    return out[: opts.top]


class _TracedPass:
    """After a leak verdict: ``rounds`` more runs under tracemalloc to name the sites.

    Tracing is kept out of the measured rounds, where it would slow the census several
    times over; the extra runs happen only when there is a leak to explain.
    """

    def __init__(self, opts: CheckOptions) -> None:
        import tracemalloc

        self.opts = opts
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start(opts.trace_frames)
        self.start: Any = None
        self.last = 0
        self.traced: list[int] = []

    def mark(self, i: int) -> None:
        """Reading ``i`` of the pass: 0 after the unmeasured run, then one per round."""
        import tracemalloc

        _settle(self.opts)
        if i == 0:
            self.start = tracemalloc.take_snapshot()
        else:
            now = tracemalloc.get_traced_memory()[0]
            self.traced.append(now - self.last)
        self.last = tracemalloc.get_traced_memory()[0]

    def apply(self, report: GrowthReport) -> None:
        """Put the sites and per-round traced bytes into ``report``."""
        import tracemalloc

        if self.start is None:
            return
        end = tracemalloc.take_snapshot()
        report.sites = _grown_sites(self.start, end, self.opts, _ignore_predicate(self.opts.ignore))
        report.deltas["traced_bytes"] = list(self.traced)
        report.tracing = True

    def close(self) -> None:
        """Stop tracemalloc if the pass started it."""
        import tracemalloc

        self.start = None
        if self.started:
            tracemalloc.stop()
            self.started = False


def _name_sites(
    report: GrowthReport, opts: CheckOptions, run_once: Callable[[int], object]
) -> None:
    if not report.leaked or opts.trace is False or report.sites:
        return
    traced = _TracedPass(opts)
    try:
        base = opts.warmup + opts.rounds
        # one unmeasured run first: tracing's own first-use allocations settle in it
        for k in range(opts.rounds + 1):
            run_once(base + 1 + k)
            traced.mark(k)
        traced.apply(report)
    except Exception as exc:  # naming sites is a courtesy: the verdict stands without it
        report.noise.append(f"traced pass failed: {type(exc).__name__}: {exc}")
    finally:
        traced.close()


# --------------------------------------------------------------------------- drivers


def _label_of(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return str(name)


def run_check(
    run_once: Callable[[int], object],
    opts: CheckOptions,
    *,
    label: str,
    census: Census | None = None,
    loop: Any = None,
    tasks: Callable[[], int] | None = None,
) -> GrowthReport:
    """Run ``run_once(i)`` warmup + rounds times with readings between; return the report.

    ``tasks`` replaces the pending-task reading (the pytest plugin counts the tasks each
    run of a test leaves pending, since every run gets a fresh event loop).
    """
    start = time.perf_counter()
    probe = _Probe(
        opts,
        census=census or _default_census,
        loop=loop,
        tasks=tasks,
        inline_trace=opts.trace is True,
    )
    runs = iter(range(1, opts.warmup + opts.rounds + 1))  # made before the baseline reading
    quiet = _QuietRepeats()
    try:
        probe.begin()
        for i in runs:
            if i == 1:
                run_once(i)  # the first run shows its warnings as usual
            else:
                with quiet:
                    run_once(i)
            probe.read(i)
        report = probe.finish(label, time.perf_counter() - start)
    finally:
        probe.close()
    with quiet:
        _name_sites(report, opts, run_once)
    report.seconds = time.perf_counter() - start
    return report


def _raise_if_leaked(report: GrowthReport) -> GrowthReport:
    if report.leaked:
        raise MemoryGrowthError(report.format(), report)
    return report


def _split_options(kwargs: dict[str, Any]) -> tuple[CheckOptions, Census | None]:
    census = kwargs.pop("census_source", None)
    return CheckOptions.build(**kwargs), census


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


def assert_no_growth(
    fn: Callable[..., object],
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
    census_source: Census | None = None,
    **kwargs: Any,
) -> GrowthReport:
    """Call ``fn(*args, **kwargs)`` warmup + rounds times; raise MemoryGrowthError if it leaks."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    opts, source = _split_options(
        dict(
            warmup=warmup,
            rounds=rounds,
            trace=trace,
            trace_frames=trace_frames,
            census=census,
            ignore=ignore,
            clear=clear,
            threads=threads,
            min_growth=min_growth,
            min_growth_bytes=min_growth_bytes,
            allow_fds=allow_fds,
            allow_threads=allow_threads,
            top=top,
            census_source=census_source,
        )
    )
    label = _label_of(fn)
    dunder_call = getattr(type(fn), "__call__", None)  # noqa: B004  (an async __call__)
    if not (inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(dunder_call)):

        def call(i: int) -> object:
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


async def assert_no_growth_async(
    fn: Callable[..., Awaitable[object]],
    *args: Any,
    warmup: int = 3,
    rounds: int = 5,
    **kwargs: Any,
) -> GrowthReport:
    """In a running loop: await ``fn`` warmup + rounds times; raise MemoryGrowthError on a leak.

    Options are those of :func:`assert_no_growth`. Tasks ``fn`` leaves pending stay on the
    caller's loop (memscope does not cancel tasks it does not own).
    """
    import asyncio

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    names = set(CheckOptions.__dataclass_fields__) | {"census_source"}
    option_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    opts, source = _split_options(dict(warmup=warmup, rounds=rounds, **option_kwargs))
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    probe = _Probe(
        opts, census=source or _default_census, loop=loop, inline_trace=opts.trace is True
    )
    runs = iter(range(1, opts.warmup + opts.rounds + 1))  # made before the baseline reading
    try:
        probe.begin()
        for i in runs:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
            del result
            await _let_loop_run()
            probe.read(i)
        report = probe.finish(_label_of(fn), time.perf_counter() - start)
    finally:
        probe.close()
    if report.leaked and opts.trace is not False and not report.sites:
        traced = _TracedPass(opts)
        try:
            for k in range(opts.rounds + 1):
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    await result
                del result
                await _let_loop_run()
                traced.mark(k)
            traced.apply(report)
        finally:
            traced.close()
    report.seconds = time.perf_counter() - start
    return _raise_if_leaked(report)


async def _let_loop_run(steps: int = 3) -> None:
    """Give tasks the code just scheduled their next steps before counting them as pending."""
    import asyncio

    for _ in range(steps):
        await asyncio.sleep(0)


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
    census_source: Census | None = None,
) -> Iterator[NoGrowthCheck]:
    """One-shot check of a block (the weaker check: one round cannot tell a cache from a leak).

    Anything the block leaves behind counts, including caches it fills the first time;
    prefer :func:`assert_no_growth`, which repeats the code, whenever it can be called twice.
    """
    opts, source = _split_options(
        dict(
            warmup=0,
            rounds=1,
            trace=trace,
            trace_frames=trace_frames,
            census=census,
            ignore=ignore,
            clear=clear,
            threads=threads,
            min_growth=min_growth,
            min_growth_bytes=min_growth_bytes,
            allow_fds=allow_fds,
            allow_threads=allow_threads,
            top=top,
            census_source=census_source,
        )
    )
    check = NoGrowthCheck()
    start = time.perf_counter()
    probe = _Probe(opts, census=source or _default_census, inline_trace=opts.trace is not False)
    try:
        probe.begin()
        yield check
        probe.read(1)
        check.report = probe.finish(label, time.perf_counter() - start)
    finally:
        probe.close()
    if check.report is not None:
        _raise_if_leaked(check.report)
