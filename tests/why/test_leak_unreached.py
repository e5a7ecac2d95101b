"""find_leaks(): objects held from C (alive, reached from no root), planted with ctypes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from typing import Any

import pytest

from memscope.why import _leaks
from memscope.why._leak_unreached import PassResult, TypeUnreached, is_program_type, judge


def _run(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last line of output is JSON."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    data["stdout"] = out.stdout
    return data


_PLANT = """
    import ctypes, gc, json, memscope
    from memscope.why import _leak_report

    def plant(obj):
        # a C-level leak: a reference taken and never given back, no Python object owns it
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
"""


def test_a_c_level_leak_of_program_objects_is_named_with_its_exact_count() -> None:
    data = _run(
        _PLANT
        + """
    class Plant:
        def __init__(self, i):
            self.data = {"items": [i]}  # a dict and a list only the plant holds

    for i in range(500):
        plant(Plant(i))
    gc.collect()
    report = memscope.find_leaks(rounds=2, interval=0.1)
    # a second check, dropped at once, leaves the heap as it found it (the first one
    # filled caches, once)
    gc.collect()
    before = len(gc.get_objects())
    memscope.find_leaks(rounds=2, interval=0.1)
    gc.collect()
    left_behind = len(gc.get_objects()) - before
    text = str(report)
    out = report.to_dict()
    # words and numbers only: nothing of the examined heap is reachable from the report
    allowed = (_leak_report.LeakReport, _leak_report.UnreachedGroup, list, dict, tuple,
               str, int, float, bool)
    seen, bad = [report], []
    while seen:
        obj = seen.pop()
        if type(obj) is type:
            continue
        if type(obj) not in allowed:
            bad.append(type(obj).__name__)
        elif type(obj) not in (str, int, float, bool):
            seen.extend(gc.get_referents(obj))
    out["left_behind"] = left_behind
    out["bad"] = bad
    print(text)
    print(json.dumps(out))
    """
    )
    rows = {u["type"]: u for u in data["unreached"]}
    plant = rows["__main__.Plant"]
    assert plant["count"] == 500 and plant["first_count"] == 500
    assert plant["objects"] == 1500  # each with its dict and its list
    assert plant["why"] == "program type"
    assert plant["sample"] == "they hold 500 dict, 500 list"
    assert plant["size_bytes"] >= 500 * 48
    assert list(rows) == ["__main__.Plant"]  # nothing of the interpreter's is flagged
    assert not data["clean"] and data["unreached_checked"]
    assert "__main__.Plant (1,500 objects): the program's type" in data["stdout"]
    assert "held from C, steady:" in data["stdout"]
    assert data["bad"] == []
    # the check keeps nothing: the heap is as it was
    assert abs(data["left_behind"]) <= 2, data["left_behind"]


def test_a_builtin_type_planted_between_the_passes_is_flagged_as_grown() -> None:
    # the plant runs at the check's young collection between its two passes (a gc
    # callback, automatic collections off): 300 dicts, each holding a list, exactly then
    data = _run(
        _PLANT
        + """
    planted = []

    def between(phase, info):
        if phase == "stop" and info["generation"] == 1 and not planted:
            for i in range(300):
                plant({"n": [i]})
            planted.append(300)

    gc.collect()
    gc.disable()
    gc.callbacks.append(between)
    report = memscope.find_leaks(rounds=2, interval=0.1)
    gc.callbacks.remove(between)
    print(report)
    print(json.dumps(report.to_dict()))
    """
    )
    rows = {u["type"]: u for u in data["unreached"]}
    assert list(rows) == ["dict"], data["stdout"]
    grown = rows["dict"]
    assert grown["why"] == "grew"
    assert grown["count"] - grown["first_count"] == 300
    assert "they hold" in grown["sample"] and "300 list" in grown["sample"]
    assert "between the passes" in data["stdout"]


def test_a_thread_planting_during_the_check_is_flagged_as_grown() -> None:
    data = _run(
        _PLANT
        + """
    import threading, time

    class Seed:
        pass

    stop = threading.Event()
    started = threading.Event()

    def grow():
        while not stop.is_set():
            plant(Seed())
            started.set()
            time.sleep(0.005)

    worker = threading.Thread(target=grow, daemon=True)
    worker.start()
    started.wait(10)
    report = memscope.find_leaks(rounds=2, interval=0.2)
    stop.set()
    worker.join(10)
    print(report)
    print(json.dumps(report.to_dict()))
    """
    )
    rows = {u["type"]: u for u in data["unreached"]}
    seed = rows["__main__.Seed"]
    assert seed["why"] == "grew"
    assert seed["count"] > seed["first_count"] >= 1
    # the thread's own frame (its locals) is a root: nothing else of it is flagged
    assert list(rows) == ["__main__.Seed"], data["stdout"]


def test_a_clean_process_flags_nothing() -> None:
    # program objects held only by frames (this thread's callers, another thread's
    # locals), by a class attribute, by a closure and by a pending task: all reached;
    # what numpy's C code keeps (Cython enums, a masked array) is its steady state
    data = _run(
        """
        import asyncio, gc, json, threading
        import memscope

        try:  # an installed C extension keeps some of its own objects from C, on purpose
            import numpy
        except ImportError:
            pass

        class Local:
            pass

        class Waiting:
            pass

        class Attr:
            pass

        class Held:
            items = [Attr()]

        ready = threading.Event()
        stop = threading.Event()

        def wait():
            mine = Waiting()
            ready.set()
            stop.wait(60)
            return mine

        def closure():
            kept = Local()
            return lambda: kept

        worker = threading.Thread(target=wait, daemon=True)
        worker.start()
        ready.wait(10)

        async def pending():
            inside = Local()
            await asyncio.sleep(3600)
            return inside

        def main():
            here = Local()
            fn = closure()
            loop = asyncio.new_event_loop()
            task = loop.create_task(pending())
            loop.run_until_complete(asyncio.sleep(0))
            del task  # the loop and the task's future callbacks hold it
            gc.collect()
            report = memscope.find_leaks(rounds=2, interval=0.2)
            stop.set()
            return report, here, fn

        report = main()[0]
        print(report)
        print(json.dumps(report.to_dict()))
        """
    )
    assert data["unreached"] == [], data["stdout"]
    assert data["unreached_checked"] and data["clean"], data["stdout"]
    assert data["held_from_c_objects"] > 0 and data["held_from_c_types"] > 0
    assert "held from C, steady:" in data["stdout"]
    assert "not a leak" in data["stdout"]


def _group(name: str, entries: int, program: bool) -> TypeUnreached:
    return TypeUnreached(name, entries, entries * 2, entries * 100, program)


def test_the_rule_flags_growth_and_program_types_in_both_passes() -> None:
    first = PassResult(
        [
            _group("dict", 160, False),
            _group("app.Plant", 5, True),
            _group("app.Gone", 3, True),  # only in the first: gone, not flagged
            _group("list", 6, False),
        ]
    )
    last = PassResult(
        [
            _group("dict", 161, False),  # grew: flagged, whatever the type
            _group("app.Plant", 5, True),  # the program's, in both: flagged
            _group("tuple", 4, False),  # new and builtin: grew from 0
            _group("app.New", 2, True),  # new and the program's: grew from 0
            _group("list", 6, False),
        ]
    )
    steady = PassResult([_group("list", 6, False), _group("ast.Load", 1, False)])
    verdict = judge(first, last)
    assert [(g.type, why, was) for g, why, was in verdict.flagged] == [
        ("dict", "grew", 160),
        ("app.Plant", "program type", 5),
        ("tuple", "grew", 0),
        ("app.New", "grew", 0),
    ]
    assert (verdict.steady_objects, verdict.steady_types) == (12, 1)
    # the same interpreter state twice: nothing flagged, all of it steady
    quiet = judge(steady, steady)
    assert quiet.flagged == [] and (quiet.steady_objects, quiet.steady_types) == (14, 2)
    # a pass a moment later: what is back to its first count (or gone) was a temporary
    again = PassResult([_group("dict", 160, False), _group("app.New", 3, True)])
    confirmed = judge(first, last, again)
    assert [(g.type, why) for g, why, _ in confirmed.flagged] == [
        ("app.Plant", "program type"),
        ("app.New", "grew"),  # 2 at the second pass, 3 at the third: grown at both
    ]


def _ids(count: int, ids: set[int], threads: int = 0) -> PassResult:
    row = TypeUnreached("method", count, count, count * 64, False, entry_ids=frozenset(ids))
    return PassResult([row], threads=threads)


def test_a_growth_counts_only_entry_points_still_there_a_moment_later() -> None:
    first = _ids(2, {1, 2})
    # one new at the second pass, another (not it) at the third: temporaries come and go
    assert judge(first, _ids(3, {1, 2, 3}), _ids(3, {1, 2, 4})).flagged == []
    # the same new one at both: grown
    kept = judge(first, _ids(3, {1, 2, 3}), _ids(4, {1, 2, 3, 5})).flagged
    assert [(g.type, why, was) for g, why, was in kept] == [("method", "grew", 2)]
    # by no more than the other threads running Python (their value stacks): not flagged
    assert judge(first, _ids(3, {1, 2, 3}, threads=1), _ids(3, {1, 2, 3})).flagged == []


def test_program_types_are_the_programs_own_not_pythons_nor_installed_packages() -> None:
    app = types.ModuleType("app")
    app.__file__ = "/srv/app/app/__init__.py"
    lib = types.ModuleType("lib")
    lib.__file__ = "/venv/lib/python3.11/site-packages/lib/__init__.py"
    made = types.ModuleType("made")  # no __file__: made at run time
    modules = {"app": app, "lib": lib, "made": made}
    assert is_program_type("app.models", modules) and is_program_type("made", modules)
    assert is_program_type("__main__", modules)
    assert not is_program_type("lib._core", modules)  # its C code may keep its objects
    assert not is_program_type("gone", modules)  # no such module: not the program's
    assert not is_program_type("builtins") and not is_program_type("xml.etree.ElementTree")
    assert is_program_type("memscope.why._leaks")  # this checkout: not installed in site-packages


def test_a_pass_cut_short_by_the_timeout_reports_nothing_and_says_so() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # every reading a second later: the pass is past its deadline at once
        return now[0]

    report = _leaks.check(
        rounds=1, interval=0.0, limit=5, timeout=2.0, clock=clock, sleep=lambda s: None
    )
    assert report.unreached == [] and not report.unreached_checked
    assert any("search for what is held from C (first pass)" in n for n in report.notes)
    assert "held from C, steady" not in str(report)


def test_a_failing_pass_is_a_note_and_the_rest_of_the_check_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**kwargs: Any) -> PassResult:
        raise RuntimeError("walk failed")

    monkeypatch.setattr(_leaks, "unreached_pass", broken)
    report = _leaks.find_leaks(rounds=1, interval=0.0)
    assert report.censuses == 2 and report.unreached == [] and not report.unreached_checked
    assert "the search for what is held from C failed: RuntimeError: walk failed" in report.notes
