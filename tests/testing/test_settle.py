"""Settling before a reading: the ABC caches it clears, and where it finds those ABCs."""

from __future__ import annotations

import abc
import collections.abc

from memscope.testing import clear_interpreter_caches
from memscope.testing._options import CheckOptions
from memscope.testing._probe import Probe
from memscope.testing._settle import abc_classes, settle


class Shelf(collections.abc.Sized):
    """An ABC under collections.abc: the walk from the stdlib's roots reaches it."""

    def __len__(self) -> int:
        return 0


def negative_cache(cls: type) -> set[object]:
    """What ``cls`` remembers is not its subclass (CPython's C ``_abc`` keeps weakrefs)."""
    dump = abc._get_dump(cls)  # type: ignore[attr-defined]
    return {ref() for ref in dump[2]}


def fill(cls: type) -> None:
    assert not isinstance(1.5, cls)
    assert float in negative_cache(cls)


def test_the_walk_finds_abcs_under_the_stdlib_roots() -> None:
    found = abc_classes()
    assert Shelf in found
    assert collections.abc.Mapping in found
    assert len(set(found)) == len(found)


def test_clearing_finds_the_abcs_itself_or_clears_the_ones_given() -> None:
    fill(Shelf)
    clear_interpreter_caches()
    assert negative_cache(Shelf) == set()
    fill(Shelf)
    clear_interpreter_caches(abcs=())
    assert float in negative_cache(Shelf)  # not given: left as it was
    settle(CheckOptions(), abcs=())  # settle clears the ABCs it is given, and only them
    assert float in negative_cache(Shelf)
    settle(CheckOptions(), abcs=(Shelf,))
    assert negative_cache(Shelf) == set()


def test_the_probe_finds_the_abcs_up_to_the_baseline_and_keeps_them() -> None:
    """The measured rounds' settles clear the same ABCs, found outside every round.

    The walk's set and lists are malloc'd: in a process of a few hundred ABCs (this
    suite's, by the time it reached the accuracy tests) they moved malloc'd bytes by
    +-656 on every reading, and a function that keeps nothing read as a leak.
    """
    opts = CheckOptions(warmup=2, rounds=3)
    probe = Probe(opts, census=None)
    try:
        probe.begin()
        for i in (1, 2):
            probe.read(i)
        baseline = probe.abcs
        late = abc.ABCMeta("Late", (collections.abc.Sized,), {"__len__": lambda self: 0})
        for i in (3, 4, 5):
            probe.read(i)
            assert probe.abcs is baseline
        assert late not in baseline
        assert Shelf in baseline
    finally:
        probe.close()
    assert probe.abcs == ()
