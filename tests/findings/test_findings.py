"""Findings and the ranked table from snapshots built by hand: the rules, one at a time."""

from __future__ import annotations

from typing import Any

import pytest

import memscope
from memscope import Snapshot
from memscope._diff import is_counter
from memscope.collectors.census import CensusSection
from memscope.collectors.containers import ContainersSection, TopChange
from memscope.collectors.gcstats import GCSection
from memscope.collectors.process import ProcessSection
from memscope.collectors.tasks import TasksSection

MiB = 1 << 20


def process(rss: int, fds: dict[str, int] | None, vms: int = 0) -> ProcessSection:
    return ProcessSection(
        {
            "pid": 1,
            "rss_bytes": rss,
            "vms_bytes": vms or rss * 2,
            "num_fds": sum((fds or {}).values()) or 5,
            "num_threads": 1,
            "fds": fds,
            "cgroup": {"version": 2, "usage_bytes": rss + MiB, "limit_bytes": None},
        }
    )


def census(types: dict[str, tuple[int, int]], *, native: set[str] = frozenset()) -> CensusSection:  # type: ignore[assignment]
    rows = [
        {"type": t, "count": c, "size_bytes": s} | ({"native": True} if t in native else {})
        for t, (c, s) in sorted(types.items(), key=lambda kv: kv[1][1], reverse=True)
    ]
    own = [r for r in rows if "." in r["type"]]
    return CensusSection(
        {
            "objects_total": sum(c for c, _ in types.values()),
            "size_bytes_total": sum(s for _, s in types.values()),
            "types_total": len(rows),
            "modules_total": 1,
            "own_types_total": len(own),
            "count_floor": 0,
            "by_type": rows,
            "by_count": own,
            "by_module": [],
        }
    )


def containers(rows: list[dict[str, Any]], limit: int = 3, pid: int = 1) -> ContainersSection:
    return ContainersSection({"top": rows, "count": len(rows), "limit": limit, "pid": pid})


def row(key: str, length: int, oid: int, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "id": oid,
        "type": "dict",
        "length": length,
        "size_bytes": length * 100,
        "summary": f"dict of {length:,} items",
        "held": extra.pop("held", ["bytes", "str"]),
        "where": extra.pop("where", key),
        "path": extra.pop("path", key),
        "owner": extra.pop("owner", None),
    }


def snap(label: str, t: float, pid: int = 1, **sections: Any) -> Snapshot:
    return Snapshot(label=label, timestamp=t, pid=pid, python="3", sections=sections)


def test_a_finding_is_a_frozen_record_with_its_sentence() -> None:
    f = memscope.Finding("type", "app.Model", None, 3.0, 100, "+3 app.Model objects", 1.0)
    assert str(f) == "+3 app.Model objects"
    assert f.to_dict()["kind"] == "type"
    with pytest.raises(AttributeError):
        f.delta = 4.0  # type: ignore[misc]


def test_fds_by_kind_lead_and_name_the_type_that_holds_them() -> None:
    a = snap("a", 0, process=process(50 * MiB, {"files": 5, "sockets": 40}))
    b = snap("b", 10, process=process(52 * MiB, {"files": 5, "sockets": 190}))
    a.sections["census"] = census({"socket.socket": (40, 4000), "str": (10_000, MiB)})
    b.sections["census"] = census({"socket.socket": (190, 19_000), "str": (10_050, MiB)})
    diff = memscope.compare(a, b)
    first = diff.findings()[0]
    assert first.kind == "resource"
    assert first.evidence == "open files +150, all sockets (socket.socket +150)"
    lines = str(diff).splitlines()
    assert lines[1] == "  * open files +150, all sockets (socket.socket +150)"
    # in the table, the fds outrank the RSS that grew 2 MiB
    ranked = [c.key for c in diff.ranked()]
    assert ranked.index("fds.sockets") < ranked.index("rss_bytes")


def test_fds_by_kind_unavailable_is_said_not_guessed() -> None:
    a = snap("a", 0, process=process(50 * MiB, None))
    b = snap("b", 1, process=process(50 * MiB, None))
    b.sections["process"] = ProcessSection({**b["process"].to_dict(), "num_fds": 30})
    f = memscope.compare(a, b).findings()[0]
    assert f.evidence == "open files +25 (by kind: unavailable here)"
    assert "unavailable" in "\n".join(b["process"].summary_lines())


def test_counters_are_rates_and_never_outrank_state() -> None:
    gc_a = GCSection({"collected_total": 100, "collections_total": 10, "garbage": 0})
    gc_b = GCSection({"collected_total": 900_100, "collections_total": 5_010, "garbage": 2})
    a = snap("a", 0, gc=gc_a, process=process(50 * MiB, {"files": 3}))
    b = snap("b", 100, gc=gc_b, process=process(50 * MiB + 4096, {"files": 3}))
    diff = memscope.compare(a, b)
    ranked = diff.ranked()
    counters = [i for i, c in enumerate(ranked) if is_counter(c)]
    state = [i for i, c in enumerate(ranked) if not is_counter(c)]
    assert counters and state and max(state) < min(counters)  # +2 garbage before +900,000
    text = diff.summary(top=50)
    assert "gc: collected_total  (9,000/s, a counter)" in text


def test_memory_restatements_collapse_into_one_line() -> None:
    a = snap("a", 0, process=process(100 * MiB, {"files": 3}))
    b = snap("b", 1, process=process(265 * MiB, {"files": 3}))
    a.sections["census"] = census({"str": (1000, 2 * MiB)})
    b.sections["census"] = census({"str": (1100, 4 * MiB + MiB // 2)})
    text = str(memscope.compare(a, b))
    memory = [line for line in text.splitlines() if "memory:" in line]
    assert len(memory) == 1
    assert "rss (100.0 MiB -> 265.0 MiB)" in memory[0]
    assert "vms +330.0 MiB" in memory[0] and "cgroup usage +165.0 MiB" in memory[0]
    assert "process: vms_bytes" not in text and "census: size_bytes_total" not in text


def test_native_memory_is_named_with_the_extension_types_that_grew() -> None:
    a = snap("a", 0, process=process(100 * MiB, {"files": 3}))
    b = snap("b", 1, process=process(265 * MiB, {"files": 3}))
    a.sections["census"] = census({"ssl.SSLContext": (3, 300), "str": (1000, 2 * MiB)})
    b.sections["census"] = census(
        {"ssl.SSLContext": (203, 20_300), "str": (1100, 4 * MiB + MiB // 2)},
        native={"ssl.SSLContext"},
    )
    first = memscope.compare(a, b).findings()[0]
    assert first.kind == "native"
    assert first.evidence == (
        "RSS +165.0 MiB but Python objects +2.5 MiB: native memory; +200 ssl.SSLContext"
    )


def test_a_container_missing_from_a_top_list_is_not_in_the_top_n_not_zero() -> None:
    a = containers([row("app.a", 900, 1), row("app.b", 800, 2), row("locale.windows", 208, 3)])
    b = containers([row("app.a", 4000, 1), row("app.b", 3000, 2), row("app.c", 2000, 4)])
    diff = memscope.compare(snap("a", 0, containers=a), snap("b", 1, containers=b))
    keys = {c.key: c for c in diff["containers"]}
    # locale.windows fell out of a full list whose floor is 2,000: nothing can be told
    assert not any("locale.windows" in k for k in keys)
    new = keys["top[app.c].length"]
    assert isinstance(new, TopChange) and new.note == "not in the top 3 before"
    assert new.before == 208 and new.delta == 2000 - 208
    assert "(at most 208 -> 2,000: not in the top 3 before)" in diff.summary(top=50)


def test_containers_pair_by_identity_in_one_process_never_by_hint_text() -> None:
    a = containers([row("dict key 'x' <- a dict", 1000, 77)], limit=20)
    b = containers([row("app.registry['x']", 5000, 77)], limit=20)
    diff = memscope.compare(snap("a", 0, containers=a), snap("b", 1, containers=b))
    lengths = [c for c in diff["containers"] if c.key.endswith(".length")]
    assert len(lengths) == 1 and lengths[0].delta == 4000  # one row, not -1,000 and +5,000
    # in another process the same id is another object: rows pair by stable path only
    other = memscope.compare(
        snap("a", 0, containers=a), snap("b", 1, pid=2, containers=containers(b["top"], pid=2))
    )
    assert sorted(c.delta for c in other["containers"] if c.key.endswith(".length")) == [
        -1000,
        5000,
    ]


def test_a_list_of_the_programs_objects_is_told_by_the_objects_and_their_holder() -> None:
    held = ["logging.FileHandler"]
    a = containers([], limit=20)
    b = containers(
        [row("logger 'audit' handlers", 300, 5, held=held, path="logger 'audit' handlers")]
    )
    b["top"][0]["type"] = "list"
    ca = census({"logging.FileHandler": (0, 0), "str": (10, 100)})
    cb = census({"logging.FileHandler": (300, 30_000), "str": (10, 100)})
    a_files = process(MiB, {"files": 10})
    b_files = process(MiB, {"files": 310})
    diff = memscope.compare(
        snap("a", 0, containers=a, census=ca, process=a_files),
        snap("b", 1, containers=b, census=cb, process=b_files),
    )
    texts = [f.evidence for f in diff.findings()]
    assert (
        "+300 logging.FileHandler objects in logger 'audit' handlers, each holding an open file"
        in texts[:2]
    )


def test_pending_tasks_name_their_coroutine() -> None:
    def tasks(n: int) -> TasksSection:
        return TasksSection(
            {
                "count": n + 1,
                "pending": n + 1,
                "done": 0,
                "by_coroutine": [{"coroutine": "orders_app._notify", "count": n, "done": 0}],
            }
        )

    diff = memscope.compare(snap("a", 0, tasks=tasks(0)), snap("b", 1, tasks=tasks(430)))
    assert diff.findings()[0].evidence == "+430 pending tasks running orders_app._notify()"
    assert diff.to_dict()["findings"][0]["kind"] == "tasks"


def test_a_broken_section_costs_its_finding_only() -> None:
    class Odd(ProcessSection):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("odd")

    a = snap("a", 0, process=Odd({"rss_bytes": 1}))
    b = snap("b", 1, process=Odd({"rss_bytes": 2}))
    a.sections["tasks"] = TasksSection({"pending": 0, "by_coroutine": []})
    b.sections["tasks"] = TasksSection({"pending": 50, "by_coroutine": []})
    diff = memscope.compare(a, b)
    assert [f.kind for f in diff.findings()] == ["tasks"]
    assert str(diff).splitlines()[1] == "  * +50 pending tasks"
