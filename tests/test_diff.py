"""compare(): per-section deltas, largest first."""

from __future__ import annotations

import gc

import pytest

import memscope
from memscope import Section


class Holder:
    """A planted type whose growth compare() must find."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


def test_compare_finds_planted_growth_first() -> None:
    keep: list[Holder] = []
    gc.collect()
    before = memscope.snapshot(label="before", deep=True)
    keep.extend(Holder(bytes(2000) + str(i).encode()) for i in range(5000))
    gc.collect()
    after = memscope.snapshot(label="after", deep=True)
    diff = memscope.compare(before, after)
    # Holder had no instance before, so no row: a row missing from a full top list is "at
    # most the list's floor" there, not zero, and the delta is that much smaller
    holders = diff.get("census", f"by_type[{__name__}.Holder].count")
    assert holders is not None and 4900 <= holders.delta <= 5000
    assert holders.delta == 5000 or "not in the top" in getattr(holders, "note", "")
    assert diff.delta("census", "by_type[bytes].count") >= 5000
    assert diff.delta("census", "by_type[bytes].size_bytes") >= 5000 * 2000
    text = str(diff)
    assert text.startswith("memscope diff 'before' -> 'after'")
    # the story leads: the planted type (or the list holding it) in the first lines, and the
    # ranked table starts with that evidence, not with the bytes that restate it
    assert f"{__name__}.Holder" in "\n".join(text.splitlines()[:6])
    ranked = diff.ranked()
    first = (ranked[0].section, ranked[0].key)
    assert first == ("census", f"by_type[{__name__}.Holder].count") or (
        first[0] == "containers" and first[1].endswith(".length")
    ), first
    keys = [(c.section, c.key) for c in ranked]
    assert keys.index(("census", "by_type[bytes].size_bytes")) < keys.index(
        ("census", "size_bytes_total")
    )
    del keep


def test_diff_to_dict_and_errors() -> None:
    a = memscope.snapshot(label="a", collectors=["gc", "threads"])
    b = memscope.snapshot(label="b", collectors=["gc"])
    diff = memscope.compare(a, b)
    data = diff.to_dict()
    assert data["a"]["label"] == "a" and data["b"]["label"] == "b"
    assert data["errors"] == {"threads": "only in the first snapshot"}
    assert diff.seconds >= 0
    with pytest.raises(TypeError, match=r"b must be a memscope\.Snapshot"):
        memscope.compare(a, {})  # type: ignore[arg-type]


def test_no_change_says_so() -> None:
    a = memscope.snapshot(label="a", collectors=["threads"])
    diff = memscope.compare(a, a)
    assert "no changes" in str(diff)
    with pytest.raises(ValueError, match="top must be an int >= 1"):
        diff.summary(top=0)


def test_generic_section_diffs_nested_numbers_and_tables() -> None:
    class Rows(Section):
        name = "rows"
        tables = {"items": ("id", ("n",))}

    old = Rows({"a_bytes": 10, "nested": {"count": 1}, "items": [{"id": "x", "n": 1}]})
    new = Rows(
        {"a_bytes": 30, "nested": {"count": 4}, "items": [{"id": "x", "n": 5}, {"id": "y", "n": 2}]}
    )
    changes = {c.key: c for c in new.diff(old)}
    assert changes["a_bytes"].delta == 20 and changes["a_bytes"].unit == "bytes"
    assert changes["nested.count"].delta == 3
    assert changes["items[x].n"].delta == 4
    assert changes["items[y].n"].before == 0 and changes["items[y].n"].after == 2


def test_gc_pauses_are_seconds_and_error_counts_are_counts() -> None:
    before = memscope.snapshot(collectors=["gc"])
    junk = []
    for _ in range(200):
        junk.append([[] for _ in range(50)])
        junk[-1].append(junk[-1])  # cycles, so collections have work
    del junk
    gc.collect()
    after = memscope.snapshot(collectors=["gc"])
    diff = memscope.compare(before, after)
    total = diff.get("gc", "pause_seconds_total")
    assert total is not None and total.delta > 0
    assert total.unit == "seconds"  # the _total suffix qualifies seconds, it is no count
    rows = [c for c in diff["gc"] if ".pause_seconds_" in c.key]
    assert rows and all(c.unit == "seconds" for c in rows)
    assert "s  gc: pause_seconds_total" in diff.summary(top=200)
    deep = memscope.snapshot(collectors=["census"])
    assert memscope.compare(deep, deep).changes["census"] == []
    from memscope._base.units import unit_of

    assert unit_of("census.sizeof_errors") == "count"  # not bytes because it starts "size"


def test_unregister_takes_the_section_type_with_it() -> None:
    from memscope import _registry

    class ColourSection(Section):
        name = "colour"

    class Colour:
        name = "colour"
        cost = "cheap"
        section_type = ColourSection

        def collect(self) -> dict[str, int]:
            return {"n": 1}

    memscope.register_collector(Colour())
    assert _registry.section_type("colour") is ColourSection
    memscope.unregister_collector("colour")
    assert _registry.section_type("colour") is not ColourSection
    # a replacement without a section type does not inherit the old one either
    memscope.register_collector(Colour())
    plain = Colour()
    plain.section_type = None  # type: ignore[assignment]
    memscope.register_collector(plain, replace=True)
    try:
        assert _registry.section_type("colour") is not ColourSection
    finally:
        memscope.unregister_collector("colour")


def test_guard_statistics_show_in_compare() -> None:
    from memscope.guard import BoundedCache

    cache: BoundedCache[int, int] = BoundedCache(maxsize=10, name="models")
    for i in range(10):
        cache[i] = i
    before = memscope.snapshot(collectors=["tracked"])
    for i in range(10, 100):
        cache[i] = i
    for i in range(95, 100):
        assert cache[i] == i
    after = memscope.snapshot(collectors=["tracked"])
    diff = memscope.compare(before, after)
    evictions = diff.get("tracked", "objects[models].stats.evictions")
    assert evictions is not None and evictions.delta == 90
    assert diff.delta("tracked", "objects[models].stats.hits") == 5
    text = diff.summary(top=50)
    assert "+90  cache models: evictions" in text
    del cache


def test_a_cheap_and_a_deep_snapshot_compare_without_phantom_growth() -> None:
    cheap = memscope.snapshot(label="cheap")
    deep = memscope.snapshot(label="deep", deep=True)
    for a, b, which in ((cheap, deep, "second"), (deep, cheap, "first")):
        diff = memscope.compare(a, b)
        for name in ("census", "containers", "large_objects"):
            assert name not in diff.changes  # never "by_type[str].count 0 -> 69,930"
            assert diff.errors[name] == f"only in the {which} snapshot"
        text = diff.summary(top=500)
        assert "census: by_type" not in text and "census: objects_total" not in text
        assert "! census: only in the" in text
