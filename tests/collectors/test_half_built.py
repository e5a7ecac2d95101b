"""A tuple another thread is still filling (``tuple(generator)``) is read without a crash.

The gc shows such a tuple before its last slots are set; its own iterator hands a NULL
slot out and the interpreter segfaults. The scan runs in a child process, so a
regression fails this test instead of killing the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import namedtuple

from memscope.collectors._safe import sequence_items

CHILD = textwrap.dedent(
    """
    import gc, threading
    from memscope.collectors._holders import held_types, summarize_container
    from memscope.collectors._safe import base_iter
    from memscope.why._labels import edge_label

    class Mark: pass

    go, inside = threading.Event(), threading.Event()
    mark = Mark()

    def gen():
        yield mark
        inside.set()
        go.wait()  # the tuple now has its first slot set and nine NULL ones
        yield 2

    out = []
    worker = threading.Thread(target=lambda: out.append(tuple(gen())))
    worker.start()
    inside.wait()
    half = [o for o in gc.get_objects() if type(o) is tuple and mark in gc.get_referents(o)]
    assert len(half) == 1 and len(half[0]) == 10, half
    print(summarize_container(half[0]))
    print(held_types(half[0]))
    print(list(base_iter(half[0])) == [mark])
    print(edge_label(half[0], mark))
    del half  # the filling thread resizes the tuple, which needs its only reference
    go.set()
    worker.join()
    print(out[0] == (mark, 2))
    """
)


def test_a_half_built_tuple_is_summarized_labelled_and_iterated() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "tuple of 10 items: <__main__.Mark>",
        "['__main__.Mark']",
        "True",
        "[0]",
        "True",
    ], done.stdout


Point = namedtuple("Point", "x y")


class Tagged(list):  # type: ignore[type-arg]
    """A list subclass with an instance dict: gc.get_referents shows the dict first."""


def test_subclass_items_come_without_their_dict_or_type() -> None:
    tagged = Tagged(["a", "b", "c"])
    tagged.tag = {"extra": 1}  # type: ignore[attr-defined]
    assert list(sequence_items(tagged, list)) == ["a", "b", "c"]
    assert list(sequence_items(Point(1, 2), tuple)) == [1, 2]
    assert list(sequence_items((), tuple)) == []
    assert list(sequence_items(Tagged(), list)) == []
