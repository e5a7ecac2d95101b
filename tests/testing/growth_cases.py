"""The accuracy cases: code that leaks and code that only looks like it might.

Every value a case keeps is built at run time (compile-time constants are shared and
never leak). Each case has ``run()`` (the code under test, one call), optional
``fixture_enter()`` / ``fixture_exit()`` (what a function-scoped fixture does) and
``cleanup()`` (undo what it leaked: close files, stop threads), so the same cases drive
``assert_no_growth``, the pytest marker and the pytest-memray comparison.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sys
import tempfile
import threading
from typing import Any


class Case:
    """One accuracy case: ``leaks`` is the verdict a correct checker must give."""

    name = ""
    leaks = False
    fixture_only = False  # the leak (or the cleanup) lives in a fixture: needs the plugin
    is_async = False
    needs_mallinfo = False  # only C memory grows: seen only where glibc's mallinfo2() is

    def run(self) -> Any:
        """The code under test, one call."""

    def fixture_enter(self) -> None:
        """What the test's function-scoped fixture does before the test."""

    def fixture_exit(self) -> None:
        """What the test's function-scoped fixture does after the test."""

    def cleanup(self) -> None:
        """Undo what the case kept, after the check."""


# ------------------------------------------------------------------ must flag


class AppendObject(Case):
    name = "append_small_object"
    leaks = True

    def __init__(self) -> None:
        self.kept: list[object] = []

    def run(self) -> None:
        self.kept.append(object())


class GlobalDict(Case):
    name = "global_plain_dict"
    leaks = True

    def __init__(self) -> None:
        self.kept: list[dict[str, int]] = []

    def run(self) -> None:
        self.kept.append({"n": len(self.kept)})


class GlobalStr(Case):
    name = "global_str"
    leaks = True

    def __init__(self) -> None:
        self.kept: list[str] = []

    def run(self) -> None:
        self.kept.append(f"request-{len(self.kept)}-" + "x" * 40)


class GlobalBytes(Case):
    name = "global_bytes"
    leaks = True

    def __init__(self) -> None:
        self.kept: list[bytes] = []

    def run(self) -> None:
        self.kept.append(str(len(self.kept)).encode() * 10)


class UnboundedCache(Case):
    name = "unbounded_cache_fresh_key"
    leaks = True

    def __init__(self) -> None:
        self.cache: dict[str, list[int]] = {}
        self.calls = 0

    def run(self) -> list[int]:
        self.calls += 1
        key = f"user:{self.calls}"  # a fresh key every call: the cache never hits
        return self.cache.setdefault(key, [self.calls])


class FireAndForgetTask(Case):
    name = "fire_and_forget_task"
    leaks = True
    is_async = True

    async def run(self) -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600))


class FileLeftOpen(Case):
    name = "file_left_open"
    leaks = True

    def __init__(self) -> None:
        self.files: list[Any] = []

    def run(self) -> None:
        self.files.append(open(os.devnull, "rb"))  # noqa: SIM115 - left open on purpose

    def cleanup(self) -> None:
        for fh in self.files:
            fh.close()
        self.files.clear()


class ThreadPerCall(Case):
    name = "thread_per_call"
    leaks = True

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def run(self) -> None:
        thread = threading.Thread(target=self.stop.wait, daemon=True)
        thread.start()
        self.threads.append(thread)

    def cleanup(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        self.threads.clear()


class FixtureLeak(Case):
    name = "leak_in_function_fixture"
    leaks = True
    fixture_only = True

    def __init__(self) -> None:
        self.registry: list[dict[str, int]] = []

    def fixture_enter(self) -> None:
        self.registry.append({"session": len(self.registry)})


class CallbackPerCall(Case):
    name = "callback_on_class_list"
    leaks = True

    def __init__(self) -> None:
        class Emitter:
            listeners: list[Any] = []

        self.emitter = Emitter

    def run(self) -> None:
        seen: list[int] = []
        self.emitter.listeners.append(lambda event: seen.append(event))


class LeakEveryNth(Case):
    """Keeps one fresh dict on every ``period``-th call only: growth in steps."""

    period = 2
    leaks = True

    def __init__(self) -> None:
        self.calls = 0
        self.kept: list[dict[str, int]] = []

    def run(self) -> None:
        self.calls += 1
        if self.calls % self.period == 0:
            self.kept.append({"call": self.calls * 7})


class LeakEvery2nd(LeakEveryNth):
    name = "leak_every_2nd_call"
    period = 2


class LeakEvery3rd(LeakEveryNth):
    name = "leak_every_3rd_call"
    period = 3


class LeakEvery5th(LeakEveryNth):
    name = "leak_every_5th_call"
    period = 5


class LeakOnNewKey(Case):
    """An unbounded memo whose key changes every third call: it grows only on a new key."""

    name = "leak_only_when_a_key_is_new"
    leaks = True

    def __init__(self) -> None:
        self.calls = 0
        self.memo: dict[str, list[int]] = {}

    def run(self) -> list[int]:
        self.calls += 1
        key = f"user-{self.calls // 3}"
        if key not in self.memo:
            self.memo[key] = [self.calls] * 4
        return self.memo[key]


class NativeLeak(Case):
    """Keeps ``size`` bytes of C memory (``malloc`` through ctypes) on every ``period``-th
    call: no Python object, no pymalloc block, only malloc'd bytes grow."""

    name = "native_malloc_per_call"
    leaks = True
    needs_mallinfo = True  # without glibc's mallinfo2() nothing can see C memory grow
    # over 1032 B: glibc's per-thread cache (tcache) holds up to 7 freed chunks of each
    # smaller size and counts them as in use, so a small malloc it serves shows no growth
    size = 2048
    period = 1
    threads = 0  # threads started and joined per call around the leak (allocator churn)

    def __init__(self) -> None:
        import ctypes

        self.libc = ctypes.CDLL(None)
        self.libc.malloc.restype = ctypes.c_void_p
        self.libc.malloc.argtypes = [ctypes.c_size_t]
        self.libc.free.argtypes = [ctypes.c_void_p]
        # the pointers go into a C array made up front: keeping them adds no object
        self.kept = (ctypes.c_void_p * 4096)()
        self.count = [0]
        self.calls = [0]

    def run(self) -> None:
        if self.threads:
            ThreadsJoined.start_and_join(self.threads)
        self.calls[0] += 1
        if self.calls[0] % self.period == 0 and self.count[0] < len(self.kept):
            self.kept[self.count[0]] = self.libc.malloc(self.size)
            self.count[0] += 1

    def cleanup(self) -> None:
        for k in range(self.count[0]):
            self.libc.free(self.kept[k])
            self.kept[k] = None
        self.count[0] = 0


class NativeLeakEvery2nd(NativeLeak):
    name = "native_malloc_every_2nd_call"
    size = 4096
    period = 2


class NativeLeakAmidThreads(NativeLeak):
    name = "native_malloc_per_call_amid_threads"
    threads = 10


# ------------------------------------------------------------------ must pass


class CacheFilledOnePerCall(Case):
    """An LRU cache of ``size`` entries given a fresh key on every call: it fills one entry
    a call for ``size`` calls, then evicts one for each it adds."""

    size = 10

    def __init__(self) -> None:
        self.calls = 0

        @functools.lru_cache(maxsize=self.size)
        def load(key: int) -> list[int]:
            return [key] * 10

        self.load = load

    def run(self) -> None:
        self.calls += 1
        self.load(self.calls * 1000)

    def cleanup(self) -> None:
        self.load.cache_clear()


class CacheOf10(CacheFilledOnePerCall):
    name = "cache_of_10_filled_one_per_call"
    size = 10


class CacheOf30(CacheFilledOnePerCall):
    name = "cache_of_30_filled_one_per_call"
    size = 30


class CacheOf50(CacheFilledOnePerCall):
    name = "cache_of_50_filled_one_per_call"
    size = 50


class PoolToCap(Case):
    """A connection pool that opens one more (a buffer and its state) per call up to 20."""

    name = "pool_growing_to_its_cap"
    cap = 20

    def __init__(self) -> None:
        self.pool: list[dict[str, Any]] = []
        self.calls = 0

    def run(self) -> None:
        self.calls += 1
        if len(self.pool) < self.cap:
            self.pool.append({"id": self.calls * 11, "buffer": bytearray(2048)})
        conn = self.pool[self.calls % len(self.pool)]
        conn["buffer"][0] = self.calls % 256


class BoundedCacheFilledOnce(Case):
    name = "bounded_cache_filled_once"

    def __init__(self) -> None:
        self.keys = [f"model-{i}" for i in range(50)]

        @functools.lru_cache(maxsize=64)
        def load(key: str) -> list[str]:
            return [key] * 10

        self.load = load

    def run(self) -> None:
        for key in self.keys:
            self.load(key)

    def cleanup(self) -> None:
        self.load.cache_clear()


class BoundedCacheEvicting(Case):
    name = "bounded_cache_evicting_fresh_keys"

    def __init__(self) -> None:
        self.calls = 0

        @functools.lru_cache(maxsize=2)
        def load(key: int) -> list[int]:
            return [key] * 10

        self.load = load

    def run(self) -> None:
        self.calls += 1
        self.load(self.calls * 1000)


class LazySingleton(Case):
    name = "lazy_singleton"

    def __init__(self) -> None:
        self.instance: dict[str, Any] | None = None

    def run(self) -> dict[str, Any]:
        if self.instance is None:
            self.instance = {"config": [str(i) for i in range(100)]}
        return self.instance


class FirstImport(Case):
    name = "first_time_import"

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="memscope_case_")
        self.module = f"memscope_case_mod_{os.getpid()}_{id(self)}"
        with open(os.path.join(self.dir, self.module + ".py"), "w") as fh:
            fh.write("TABLE = {str(i): [i] * 4 for i in range(200)}\n")
        sys.path.insert(0, self.dir)

    def run(self) -> None:
        importlib.import_module(self.module)

    def cleanup(self) -> None:
        sys.modules.pop(self.module, None)
        if self.dir in sys.path:
            sys.path.remove(self.dir)


class InternedStrings(Case):
    name = "interned_strings"

    def __init__(self) -> None:
        self.names: set[str] = set()

    def run(self) -> None:
        for i in range(20):
            self.names.add(sys.intern("field_" + str(i)))


class CollectableCycles(Case):
    name = "uncollected_cycles"

    def run(self) -> None:
        for _ in range(50):
            a: dict[str, Any] = {}
            b: dict[str, Any] = {"a": a}
            a["b"] = b  # a cycle: only the cyclic collector frees it


class FixtureFreed(Case):
    name = "freed_in_fixture_teardown"
    fixture_only = True

    def __init__(self) -> None:
        self.registry: list[list[bytes]] = []

    def fixture_enter(self) -> None:
        self.registry.append([str(i).encode() * 100 for i in range(100)])

    def fixture_exit(self) -> None:
        self.registry.pop()


class AllocateAndFree(Case):
    name = "allocate_a_lot_and_free"

    def run(self) -> None:
        blob = [str(i) * 10 for i in range(100_000)]
        table = {i: bytes(64) for i in range(20_000)}
        del blob, table


class ThreadsJoined(Case):
    """Starts 10 threads per call that meet at a barrier, share a lock and a dict, and are
    all joined: nothing is kept, but the runtime's thread tables resize and glibc's
    per-thread caches fill and empty (the allocator's churn, not the program's growth)."""

    name = "threads_started_and_joined"

    @staticmethod
    def start_and_join(n: int) -> None:
        """Start ``n`` threads that wait for each other and write a shared dict; join them."""
        barrier = threading.Barrier(n, timeout=10)
        lock = threading.Lock()
        seen: dict[int, bytes] = {}

        def work(k: int) -> None:
            buf = bytes(1500 + 16 * k)  # over 512 B: from malloc, in this thread's arena
            barrier.wait()
            with lock:
                seen[k] = buf[:8]

        workers = [threading.Thread(target=work, args=(k,)) for k in range(n)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def run(self) -> None:
        self.start_and_join(10)


CASE_TYPES: list[type[Case]] = [
    AppendObject,
    GlobalDict,
    GlobalStr,
    GlobalBytes,
    UnboundedCache,
    FireAndForgetTask,
    FileLeftOpen,
    ThreadPerCall,
    FixtureLeak,
    CallbackPerCall,
    LeakEvery2nd,
    LeakEvery3rd,
    LeakEvery5th,
    LeakOnNewKey,
    NativeLeak,
    NativeLeakEvery2nd,
    NativeLeakAmidThreads,
    BoundedCacheFilledOnce,
    BoundedCacheEvicting,
    LazySingleton,
    FirstImport,
    InternedStrings,
    CollectableCycles,
    FixtureFreed,
    AllocateAndFree,
    CacheOf10,
    CacheOf30,
    CacheOf50,
    PoolToCap,
    ThreadsJoined,
]
NAMES = [c.name for c in CASE_TYPES]


def make(name: str) -> Case:
    """A fresh instance of the case called ``name``."""
    for case_type in CASE_TYPES:
        if case_type.name == name:
            return case_type()
    raise KeyError(f"no case {name!r}; cases: {NAMES}")


def pytest_module_source(marker: str, extra_imports: str = "") -> str:
    """A pytest module with one test per case, each decorated with ``marker``.

    Each test requests a function-scoped fixture doing the case's fixture work; async
    cases become pytest-asyncio tests.
    """
    lines = [
        "import pytest",
        "import growth_cases as cases",
        extra_imports,
        "",
        "CASES = {name: cases.make(name) for name in cases.NAMES}",
        "",
        "@pytest.fixture(scope='module', autouse=True)",
        "def _cleanup_cases():",
        "    yield",
        "    for case in CASES.values():",
        "        case.cleanup()",
        "",
    ]
    for case_type in CASE_TYPES:
        name = case_type.name
        lines += [
            "@pytest.fixture",
            f"def fx_{name}():",
            f"    CASES[{name!r}].fixture_enter()",
            "    yield",
            f"    CASES[{name!r}].fixture_exit()",
            "",
            marker,
        ]
        if case_type.is_async:
            lines += [
                "@pytest.mark.asyncio",
                f"async def test_{name}(fx_{name}):",
                f"    await CASES[{name!r}].run()",
            ]
        else:
            lines += [f"def test_{name}(fx_{name}):", f"    CASES[{name!r}].run()"]
        lines.append("")
    return "\n".join(lines)
