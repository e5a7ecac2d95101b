"""``memscope show`` and ``memscope diff`` on real recordings, in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import memscope

from .conftest import Run


def test_show_defaults_to_the_last_snapshot(run: Run, recording: Path) -> None:
    out = run("show", str(recording))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("memscope snapshot 'rec #6'")
    assert "[census]" in out.stdout


def test_show_an_index_from_either_end(run: Run, recording: Path) -> None:
    first = run("show", f"{recording}:0")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("memscope snapshot 'rec #1'")
    assert "[census]" not in first.stdout  # the cheap one
    out = run("show", f"{recording}:-2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["label"] == "rec #5" and "process" in data["sections"]


def test_show_a_json_file_of_one_snapshot(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(memscope.snapshot(label="single", collectors=["gc"]).to_json(indent=2))
    out = run("show", str(path), "--top", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("memscope snapshot 'single'")


def test_diff_of_two_deep_snapshots_sees_the_planted_growth(run: Run, recording: Path) -> None:
    out = run("diff", f"{recording}:1", f"{recording}:-1", "--top", "5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("memscope diff 'rec #2' -> 'rec #6'")
    # the story first: the planted type (20000 more Leak objects, 1000 bytes each) leads
    findings = [ln for ln in lines[1:] if ln.startswith("  * ")]
    assert findings and "+20,000 tests.cli.conftest.Leak objects" in findings[0]
    table = lines[lines.index("  changes, strongest evidence first:") + 1 :]
    assert len([ln for ln in table if not ln.startswith("  ...")]) == 5  # --top 5 rows
    assert "census: by_type[tests.cli.conftest.Leak].count" in out.stdout
    data = json.loads(run("diff", f"{recording}:1", f"{recording}:5", "--json").stdout)
    assert (data["a"]["label"], data["b"]["label"]) == ("rec #2", "rec #6")
    grown = {c["key"]: c for c in data["sections"]["census"]}
    bytes_growth = grown["by_type[bytes].size_bytes"]
    assert bytes_growth["after"] - bytes_growth["before"] >= 20000 * 1000


def test_bad_references_are_one_line_errors_with_exit_1(
    run: Run, recording: Path, tmp_path: Path
) -> None:
    out = run("show", str(tmp_path / "missing.jsonl"))
    assert out.returncode == 1
    assert out.stderr.startswith("memscope show: error: A: cannot read ")
    assert "No such file" in out.stderr

    out = run("diff", str(recording), f"{recording}:6")
    assert out.returncode == 1
    assert f"B: no index 6 in {recording}: it holds 6 snapshots" in out.stderr
    assert "indexes 0..5, or -6..-1" in out.stderr

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = run("diff", str(empty), str(recording))
    assert out.returncode == 1 and f"A: {empty} holds no snapshots" in out.stderr

    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"not": "a snapshot"}\n')
    out = run("show", str(junk))
    assert out.returncode == 1 and "not a snapshot" in out.stderr

    out = run("show", str(recording), "--top", "0")
    assert out.returncode == 1 and "--top" in out.stderr and ">= 1" in out.stderr
    out = run("diff", str(recording))
    assert out.returncode == 1 and "B" in out.stderr
    for err in (out.stderr,):
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
