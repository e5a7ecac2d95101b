"""explain() names the holder of real planted structures, key or attribute on every hop."""

from __future__ import annotations

import asyncio
import atexit
import gc
import signal
import threading
import types
import weakref
from collections.abc import Callable

import pytest

import memscope
from memscope.why import Chain


class Model:
    """A planted object."""


class Registry:
    def __init__(self) -> None:
        self.by_profile: dict[str, Model] = {}


def _lines(e: memscope.Explanation) -> list[str]:
    return str(e).splitlines()


def test_registry_of_models_in_a_module(make_module: Callable[[str], types.ModuleType]) -> None:
    zoo = make_module("zoo_service")
    zoo.registry = Registry()
    for i in range(10):
        zoo.registry.by_profile[f"profile-{i}"] = Model()
    e = memscope.explain(zoo.registry.by_profile["profile-7"])
    assert _lines(e)[0] == (
        "module zoo_service attribute registry -> Registry.by_profile -> dict['profile-7'] -> Model"
    )
    chain = e.chains[0]
    assert isinstance(chain, Chain) and chain.kind == "module" and not chain.partial
    assert len(chain) == 3 and not e.partial
    assert e.target.startswith(f"{Model.__module__}.Model at 0x")


def test_cache_in_an_instance(make_module: Callable[[str], types.ModuleType]) -> None:
    class Service:
        def __init__(self) -> None:
            self._cache: dict[tuple[str, int], object] = {}

    app = make_module("app_cache")
    app.service = Service()
    app.service._cache[("user", 42)] = Model()
    e = memscope.explain(app.service._cache[("user", 42)])
    assert _lines(e)[0] == (
        "module app_cache attribute service -> Service._cache -> dict[('user', 42)] -> Model"
    )


def test_closure_cell(make_module: Callable[[str], types.ModuleType]) -> None:
    def make() -> Callable[[], Model]:
        cache = Model()

        def handler() -> Model:
            return cache

        return handler

    app = make_module("app_closure")
    app.on_request = make()
    e = memscope.explain(app.on_request())
    assert _lines(e)[0] == (
        "module app_closure attribute on_request -> function "
        "test_closure_cell.<locals>.make.<locals>.handler free variable cache -> Model"
    )


def test_class_level_callback_list() -> None:
    class Plugin:
        callbacks: list[object] = []

    Plugin.callbacks.extend([Model(), Model()])
    e = memscope.explain(Plugin.callbacks[1])
    assert _lines(e)[0] == (
        f"class {__name__}.test_class_level_callback_list.<locals>.Plugin attribute callbacks"
        " -> list[1] -> Model"
    )
    assert e.chains[0].kind == "class"


def test_thread_local(make_module: Callable[[str], types.ModuleType]) -> None:
    app = make_module("app_local")
    app.state = threading.local()
    app.state.session = Model()
    e = memscope.explain(app.state.session)
    assert _lines(e)[0] == (
        "module app_local attribute state -> threading.local.session (one thread's value) -> Model"
    )


def test_running_thread_frame() -> None:
    ready, done = threading.Event(), threading.Event()
    box: list[weakref.ref[Model]] = []

    def hold() -> None:
        held = Model()
        box.append(weakref.ref(held))
        ready.set()
        done.wait(60)

    worker = threading.Thread(target=hold, name="keeper-thread", daemon=True)
    worker.start()
    try:
        assert ready.wait(60)
        e = memscope.explain(box[0]())
    finally:
        done.set()
        worker.join(60)
    line = _lines(e)[0]
    assert line.startswith("thread keeper-thread frame hold() at ")
    assert line.endswith(" local held -> Model")
    gc.collect()
    assert box[0]() is None  # the thread's local went when its frame did: nothing of ours holds it


def test_pending_asyncio_task() -> None:
    async def keeper(stop: asyncio.Event, box: list[weakref.ref[Model]]) -> None:
        payload = Model()
        box.append(weakref.ref(payload))
        await stop.wait()

    async def main() -> memscope.Explanation:
        stop = asyncio.Event()
        box: list[weakref.ref[Model]] = []
        task = asyncio.get_running_loop().create_task(keeper(stop, box), name="keeper")
        await asyncio.sleep(0)
        try:
            return memscope.explain(box[0]())
        finally:
            stop.set()
            await task

    e = asyncio.run(main())
    assert _lines(e)[0] == (
        "pending asyncio task 'keeper' running test_pending_asyncio_task.<locals>.keeper()"
        " -> coroutine test_pending_asyncio_task.<locals>.keeper() local payload -> Model"
    )
    assert e.chains[0].kind == "task"


def test_atexit_callback_is_named_as_outside_the_gc() -> None:
    def plant() -> tuple[weakref.ref[Model], weakref.ref[Callable[[], Model]]]:
        kept = Model()

        def on_exit() -> Model:
            return kept

        atexit.register(on_exit)
        return weakref.ref(kept), weakref.ref(on_exit)

    kept, callback = plant()
    try:
        e = memscope.explain(kept())
    finally:
        fn = callback()
        assert fn is not None
        atexit.unregister(fn)
    line = _lines(e)[0]
    assert line.startswith("(held where the gc cannot see (from C: an atexit callback")
    assert line.endswith("plant.<locals>.on_exit free variable kept -> Model")
    assert e.chains[0].kind == "outside-gc"


def test_signal_handler_is_a_root() -> None:
    def plant() -> weakref.ref[Model]:
        kept = Model()

        def handler(signum: int, frame: object) -> None:
            print(kept)

        signal.signal(signal.SIGUSR2, handler)
        return weakref.ref(kept)

    previous = signal.getsignal(signal.SIGUSR2)
    try:
        e = memscope.explain(plant()())
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert _lines(e)[0] == (
        "signal handler SIGUSR2 (function test_signal_handler_is_a_root.<locals>.plant.<locals>"
        ".handler) free variable kept -> Model"
    )


def test_sys_modules_and_lists(make_module: Callable[[str], types.ModuleType]) -> None:
    app = make_module("app_lists")
    app.queue = [None, None, [0, Model()]]
    assert _lines(memscope.explain(app.queue[2][1]))[0] == (
        "module app_lists attribute queue -> list[2] -> list[1] -> Model"
    )
    assert _lines(memscope.explain(app))[0] == "sys.modules['app_lists'] -> module"


def test_several_chains_shortest_first(make_module: Callable[[str], types.ModuleType]) -> None:
    app = make_module("app_many")
    m = Model()
    app.direct = m
    app.nested = {"a": {"b": m}}
    app.other = [m]
    e = memscope.explain(m, max_chains=2)
    assert len(e.chains) == 2
    assert _lines(e)[0] == "module app_many attribute direct -> Model"
    assert [len(c) for c in e.chains] == sorted(len(c) for c in e.chains)
    assert len(memscope.explain(m, max_chains=3).chains) == 3


def test_type_and_name_pick_the_largest_group(
    make_module: Callable[[str], types.ModuleType],
) -> None:
    class Widget:
        pass

    app = make_module("app_types")
    app.many = {f"w{i}": Widget() for i in range(30)}
    app.few = [Widget(), Widget()]
    by_type = memscope.explain(Widget)
    assert by_type.instances == 32 and by_type.same_path == 29
    assert _lines(by_type)[0].startswith("module app_types attribute many -> dict['w")
    by_name = memscope.explain(
        f"{__name__}.test_type_and_name_pick_the_largest_group.<locals>.Widget"
    )
    assert by_name.instances == 32 and by_name.same_path == 29
    with pytest.raises(ValueError, match=r"no live instance of nowhere\.Missing"):
        memscope.explain("nowhere.Missing")


def test_max_depth_and_timeout_give_partial_chains(
    make_module: Callable[[str], types.ModuleType],
) -> None:
    app = make_module("app_deep")
    node: object = Model()
    target = node
    for _ in range(8):
        node = [node]
    app.root = node
    shallow = memscope.explain(target, max_depth=3)
    assert shallow.partial and shallow.chains[0].partial
    assert str(shallow.chains[0]).startswith("(search stopped at depth 3) -> list[0]")
    assert str(shallow.chains[0]).endswith("-> Model")
    stopped = memscope.explain(target, timeout=1e-9)
    assert stopped.partial and all(c.partial for c in stopped.chains)
    whole = memscope.explain(target)
    assert not whole.partial and len(whole.chains[0]) == 9


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_depth": 0}, ValueError),
        ({"max_chains": 0}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"timeout": "1"}, TypeError),
        ({"path": 3}, TypeError),
        ({"path": "why.jpg"}, ValueError),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], error: type[Exception]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        memscope.explain(Model(), **kwargs)  # type: ignore[arg-type]
