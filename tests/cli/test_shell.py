"""``memscope shell`` and ``memscope.interactive()``: the command words, driven through a pipe."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import memscope
from memscope.cli._repl import SNAPSHOTS_KEPT, Helpers
from memscope.cli._tracker import COMMANDS, Tracker

# a planted leak made at the `python` prompt between two snapshots, traced allocations,
# 2000 reference cycles left for `gc`, then every command and a few bad arguments
SCRIPT = """\
list
compare
snapshot before
python
class Planted:
    pass

hoard = [Planted() for _ in range(30000)]
quit()
snapshot after
list
compare
compare 0 -1
objects 5
containers 2
top 3
python
import gc; gc.disable()
blob = [bytes(1000) for _ in range(5000)]
cycles = [[] for _ in range(2000)]
for c in cycles: c.append(c)

del cycles, c
quit()
top 3
traceback
gc
current
leaks
# a comment line is skipped
top x
top 1 2
traceback 0
compare 0 9
frobnicate now
help top
help
quit
snapshot not-reached
"""


def _blocks(text: str) -> list[str]:
    return text.splitlines()


@pytest.mark.slow
def test_shell_speaks_its_command_words_through_a_pipe() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memscope", "shell"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    text = out.stdout
    lines = _blocks(text)
    assert lines[0].startswith("memscope shell: snapshot [label], compare [i] [j], top [n]")
    assert "(memscope)" not in text and ">>>" not in text  # no prompts: stdin is not a TTY
    assert lines[1] == "no snapshots yet; `snapshot [label]` takes one"  # list
    assert lines[2] == "compare: no snapshots yet; `snapshot [label]` takes one"
    assert re.fullmatch(r"#0 'before', rss [\d.]+ MiB, [\d,]+ objects \(.+\), [\d.]+ s", lines[3])
    assert "back in the memscope shell" in lines
    assert any(re.fullmatch(r"#1 'after', rss .*", line) for line in lines)
    # list: both, numbered
    kept = lines.index("2 kept (of the last 50):")
    assert lines[kept + 1].lstrip().startswith("#0") and "'before'" in lines[kept + 1]
    assert lines[kept + 2].lstrip().startswith("#1") and "'after'" in lines[kept + 2]
    # compare (the last two) and compare 0 -1 both see the planted leak
    assert text.count("memscope diff 'before' -> 'after'") == 2
    assert text.count("* 30,000 __memscope_shell__.Planted objects in dict key 'hoard'") == 2
    # objects 5: the census, the planted type among the largest
    census = next(k for k, line in enumerate(lines) if re.fullmatch(r"[\d,]+ objects, .+", line))
    assert any(line.endswith(" __memscope_shell__.Planted") for line in lines[census : census + 6])
    # containers 2: the hoard, with its holder's name
    assert any("list of 30,000 items" in line and "hoard" in line for line in lines)
    # top 3 starts tracing and says so; nothing of the user's is traced yet
    assert "top: tracemalloc was not tracing: started it now (25 frames)" in text
    assert "top: nothing traced yet (outside memscope's own allocations)" in lines
    # the second top: the 5,000 blobs allocated at the prompt are the first site
    header = next(k for k, line in enumerate(lines) if line.startswith("traced "))
    first = re.fullmatch(r"\s+1\.\s+([\d.]+) MiB in\s+([\d,]+) blocks  (.+)", lines[header + 1])
    assert first is not None, lines[header + 1]
    assert first[3] == "<memscope shell>:1" and float(first[1]) >= 4.5
    assert int(first[2].replace(",", "")) >= 5000
    # traceback: the top site's, the shell's own frames folded
    at = lines.index(next(line for line in lines if line.startswith("site 1: ")))
    assert re.fullmatch(r"  \.\.\. \d+ frame\(s\) of the memscope shell itself", lines[at + 1])
    assert lines[at + 2] == '  File "<memscope shell>", line 1'
    # gc: the 2000 cycles left with the collector disabled are found and freed
    freed = next(line for line in lines if line.startswith("gc.collect(): "))
    found = int(freed.split()[1].replace(",", ""))
    assert found >= 2000, freed  # each list that holds itself is one unreachable object
    assert re.search(r"gc-tracked objects [\d,]+ -> [\d,]+ \(-[\d,]+\)", freed)
    # current: a cheap snapshot, tracemalloc on now
    assert "memscope snapshot 'current'" in text and "[tracemalloc]" in text
    assert "[census]" not in text.split("memscope snapshot 'current'")[1].split("\n\n")[0]
    # leaks: find_leaks' answer
    assert "no leaks found" in text or "reference cycles" in text
    # bad arguments: one line naming the argument, and the shell goes on
    assert "top: n must be an integer from 1 to 1000, got 'x'" in lines
    assert "top: takes at most one argument (n), got 2" in lines
    assert "traceback: n must be an integer from 1 to 1000, got '0'" in lines
    assert "compare: j must be a kept snapshot (#0..#1, or -1 for the last), got '9'" in lines
    unknown = "unknown command 'frobnicate'; commands: " + ", ".join(COMMANDS) + " (help COMMAND)"
    assert unknown in lines
    assert "top [n]: the n largest allocation sites (tracemalloc; started if needed)" in lines
    assert "commands:" in lines and any(line.startswith("  quit ") for line in lines)
    # quit ends it: what follows is not run
    assert "not-reached" not in text and "#2" not in text


def test_interactive_in_this_process_with_streams() -> None:
    out = io.StringIO()
    secret = ["kept by the caller"]
    memscope.interactive(
        stdin=io.StringIO("python\nsecret[0]\nlen(snaps)\nshelp()\nquit()\nlist\nhelp gc\n"),
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("memscope shell: snapshot [label]")
    assert lines[2] == "'kept by the caller'"  # the caller's names are at the python prompt
    assert lines[3] == "0"
    assert any(line.startswith("snap(label=None, deep=True)") for line in lines)
    assert lines[-3:] == [
        "back in the memscope shell",
        "no snapshots yet; `snapshot [label]` takes one",
        "gc: run gc.collect() and say what it freed",
    ]
    assert secret == ["kept by the caller"]


def test_a_failing_command_is_one_line_and_the_shell_goes_on() -> None:
    said: list[str] = []
    lines = iter(["python", "memscope.snapshot = None", "quit()", "snapshot x", "list"])

    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    original = memscope.snapshot
    try:
        Tracker(read_line, said.append, {}).run()
    finally:
        memscope.snapshot = original  # type: ignore[misc]
    text = "".join(said).splitlines()
    assert "snapshot: failed: TypeError: 'NoneType' object is not callable" in text
    assert text[-1] == "no snapshots yet; `snapshot [label]` takes one"


def test_interactive_rejects_a_bad_namespace() -> None:
    with pytest.raises(TypeError, match=r"^local must be a dict or None, got list$"):
        memscope.interactive(["not", "a", "dict"])  # type: ignore[arg-type]


def test_the_shell_keeps_a_bounded_numbered_list_of_snapshots() -> None:
    helpers = Helpers(lambda text: None)
    for _ in range(SNAPSHOTS_KEPT + 3):
        helpers.snap(deep=False)
    assert len(helpers.snaps) == SNAPSHOTS_KEPT
    assert [s.label for s in (helpers.snaps[0], helpers.snaps[-1])] == [
        "shell #3",
        f"shell #{SNAPSHOTS_KEPT + 2}",
    ]
    said: list[str] = []
    tracker = Tracker(lambda prompt: "", said.append)
    tracker.helpers = helpers
    tracker.onecmd("list")
    tracker.onecmd("compare 2 -1")
    listed = "".join(said).splitlines()
    assert listed[0] == f"{SNAPSHOTS_KEPT} kept (of the last {SNAPSHOTS_KEPT}):"
    assert listed[1].lstrip().startswith("#3 ") and "'shell #3'" in listed[1]
    last = SNAPSHOTS_KEPT + 2
    assert listed[SNAPSHOTS_KEPT].lstrip().startswith(f"#{last} ")
    assert listed[-1] == (
        f"compare: i must be a kept snapshot (#3..#{last}, or -1 for the last), got '2'"
    )


@pytest.mark.slow
def test_on_a_tty_it_prompts_and_keeps_a_readline_history(tmp_path: Path) -> None:
    pytest.importorskip("readline")
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin and stdout are the terminal; HOME is the test's
        os.environ["HOME"] = str(tmp_path)
        os.environ["TERM"] = "dumb"
        os.execv(sys.executable, [sys.executable, "-m", "memscope", "shell"])
    out = b""

    def read_until(marker: bytes, timeout: float = 120) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 1.0)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    return

    try:
        read_until(b"(memscope) ")
        os.write(fd, b"help gc\r")
        read_until(b"say what it freed")
        os.write(fd, b"quit\r")
        read_until(b"\xff")  # to the end of output
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode("utf-8", "replace")
    assert text.count("(memscope) ") == 2  # a prompt before each command
    assert "gc: run gc.collect() and say what it freed" in text
    history = (tmp_path / ".memscope_history").read_text().splitlines()
    assert history[-2:] == ["help gc", "quit"]


ZOO = """\
class Model:
    pass


class Registry:
    def __init__(self):
        self.by_profile = {"profile-7": Model()}


registry = Registry()
"""

EXPLAIN_SCRIPT = """\
explain zoo_service.Model
python
import zoo_service
held = zoo_service.registry.by_profile["profile-7"]
quit()
explain held
explain nosuch.Thing
explain 1/0
explain
explain held.
explain held.nosuch
explain zoo_service.models.Model
python
import gc; gc.disable()
class Knot:
    pass

knots = [Knot() for _ in range(300)]
for k in knots: k.me = k

del knots, k
quit()
leaks
quit
"""


def test_shell_explains_a_type_name_and_an_expression_through_a_pipe(tmp_path: Path) -> None:
    (tmp_path / "zoo_service.py").write_text(ZOO)
    out = subprocess.run(
        [sys.executable, "-c", "import zoo_service, memscope; memscope.interactive()"],
        input=EXPLAIN_SCRIPT,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        },
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    chain = (
        "  module zoo_service attribute registry -> Registry.by_profile -> "
        "dict['profile-7'] -> Model"
    )
    why = [
        k
        for k, line in enumerate(lines)
        if re.fullmatch(r"why is zoo_service\.Model at 0x[0-9a-f]+ alive\?", line)
    ]
    # the type name, then the expression of the python prompt's names: the same object
    assert len(why) == 2, out.stdout
    assert lines[why[0]] == lines[why[1]]
    for k in why:
        assert lines[k + 1] == chain
        assert lines[k + 2].startswith("retained ")
    # each failure is one line, and the shell goes on to the next command
    assert (
        "explain: failed: ValueError: obj_or_type: no live instance of nosuch.Thing" in out.stdout
    )
    assert "explain: failed: ZeroDivisionError: division by zero" in lines
    assert any(line.startswith("explain: takes a type name") for line in lines)
    assert any(line.startswith("explain: failed: SyntaxError") for line in lines)
    # an attribute the object lacks is the user's error; a module's is a type name to find
    assert "explain: failed: AttributeError: 'Model' object has no attribute 'nosuch'" in lines
    assert any("no live instance of zoo_service.models.Model" in line for line in lines)
    assert "Traceback" not in out.stdout
    # leaks: the 300 self-referencing Knots planted at the prompt, counted exactly
    # (interactive() runs in the caller's names: the class is __main__.Knot)
    [knots] = [line.split() for line in lines if line.endswith(" __main__.Knot")]
    assert knots[0] == "300"
