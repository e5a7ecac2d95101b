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
    assert diff.delta("census", f"by_type[{__name__}.Holder].count") == 5000
    assert diff.delta("census", "by_type[bytes].count") >= 5000
    assert diff.delta("census", "by_type[bytes].size_bytes") >= 5000 * 2000
    text = str(diff)
    assert text.startswith("memscope diff 'before' -> 'after'")
    # the summary leads with what grew: RSS or the planted type's bytes, not context numbers
    ranked = diff.ranked()
    assert (ranked[0].section, ranked[0].key) in {
        ("process", "rss_bytes"),
        ("census", "by_type[bytes].size_bytes"),
    }
    assert ranked[0].key in text.splitlines()[1]
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
    with pytest.raises(ValueError, match="top must be >= 1"):
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
