"""``memscope shell`` and ``memscope.interactive()``, driven through a pipe in subprocesses."""

from __future__ import annotations

import io
import subprocess
import sys

import memscope
from memscope.cli._console import SNAPSHOTS_KEPT, Helpers

from .conftest import Run

COMMANDS = """\
class Planted:
    pass

hoard = [Planted() for _ in range(30000)]
len(hoard)
top(5)
snap("one", top=1)
grown = [Planted() for _ in range(10000)]
snap("two", top=1)
diff(top=3)
containers(2)
leaks()
undefined_name
quit()
print("not reached")
"""


def test_shell_reads_commands_from_a_pipe(run: Run) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memscope", "shell"],
        input=COMMANDS,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    lines = text.splitlines()
    assert lines[0].startswith("memscope shell: snap(")
    assert ">>>" not in text  # no prompts when stdin is not a TTY
    assert lines[1] == "30000"
    assert any(line.endswith("__memscope_shell__.Planted") for line in lines[2:8])  # top(5)
    assert "memscope snapshot 'one'" in text and "memscope snapshot 'two'" in text
    assert "memscope diff 'one' -> 'two'" in text
    assert "+10,000 __memscope_shell__.Planted objects" in text
    assert any("list of 30,000 items" in line and "hoard" in line for line in lines)
    assert "reference cycles" in text  # leaks()
    assert "NameError: name 'undefined_name' is not defined" in text
    assert "not reached" not in text


def test_interactive_in_this_process_with_streams() -> None:
    out = io.StringIO()
    secret = ["kept by the caller"]
    memscope.interactive(stdin=io.StringIO("secret[0]\nlen(snaps)\nshelp()\n"), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1] == "'kept by the caller'"  # the caller's names are there
    assert lines[2] == "0"
    assert any(line.startswith("snap(label=None, deep=True)") for line in lines)
    assert secret == ["kept by the caller"]


def test_interactive_rejects_a_bad_namespace() -> None:
    try:
        memscope.interactive(["not", "a", "dict"])  # type: ignore[arg-type]
    except TypeError as exc:
        assert str(exc) == "local must be a dict or None, got list"
    else:
        raise AssertionError("no TypeError")


def test_the_shell_keeps_a_bounded_list_of_snapshots() -> None:
    helpers = Helpers(lambda text: None)
    for _ in range(SNAPSHOTS_KEPT + 3):
        helpers.snap(deep=False)
    assert len(helpers.snaps) == SNAPSHOTS_KEPT
    assert [s.label for s in (helpers.snaps[0], helpers.snaps[-1])] == [
        "shell #3",
        f"shell #{SNAPSHOTS_KEPT + 2}",
    ]
