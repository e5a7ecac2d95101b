"""``memscope attach`` and ``memscope shell --pid`` against real targets, with real gdb.

Every target is a plain interpreter started with ``-I -S`` (no site-packages: memscope is
not importable there, and it checks so at start); it holds a planted leak and answers
expressions read from its stdin, so the tests can ask it afterwards what is left in it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from .conftest import Run

if (
    os.environ.get("MEMSCOPE_CI")
    and sys.platform == "linux"
    and sys.version_info < (3, 14)
    and shutil.which("gdb") is None
):
    # CI attaches with real gdb: there a missing gdb is a failure, not a skip
    raise RuntimeError("MEMSCOPE_CI is set but gdb is not installed (.ci/run installs it)")

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="attach is Linux-only before 3.14"),
    pytest.mark.skipif(
        sys.version_info < (3, 14) and shutil.which("gdb") is None, reason="gdb is not installed"
    ),
]


@pytest.fixture(scope="module", autouse=True)
def gdb_can_call() -> None:
    """Skip where gdb attaches but cannot restore a thread's registers (a machine fault).

    gdb 13 on some kernels with AMX CPUs fails to write the extended register state, and
    a call through it would leave the target's interrupted syscall unrestarted (a sleeping
    interpreter then dies). attach checks for that before any call: here it must refuse
    in one line, and the sleeping target must live on. Nothing else here could inject.
    """
    if sys.version_info >= (3, 14) or shutil.which("gdb") is None:
        return
    # the sleeper is the shell's child, not this process's: its stop under ptrace then
    # interrupts no wait of ours
    python = shlex.quote(sys.executable)
    script = (
        f'{python} -I -S -c "import time; time.sleep(60)" & sleep 0.3; '
        f"{python} -m memscope attach $! 2>&1; echo EXIT $?; sleep 0.3; "
        "kill -0 $! && echo ALIVE; kill $!"
    )
    probe = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    if "cannot write this CPU's extended registers" in probe.stdout:
        assert "EXIT 2" in probe.stdout and "ALIVE" in probe.stdout, probe.stdout
        pytest.skip("this machine's gdb cannot restore registers after a call (extended state)")


TARGET = """
import gc, os, sys
try:
    import memscope
except ImportError:
    pass
else:
    raise SystemExit("memscope must not be importable in the target")

class PlantedLeak:
    def __init__(self, i):
        self.payload = "leak-%d" % i

hoard = [PlantedLeak(i) for i in range(20000)]
state0 = (list(sys.path), len(gc.callbacks))
print("ready", flush=True)
for line in sys.stdin:
    print(repr(eval(line)), flush=True)
"""
# the busy variant holds the GIL in a pure-Python loop (the pending-call path) and looks
# at its stdin now and then
BUSY = TARGET.replace(
    "for line in sys.stdin:\n    print(repr(eval(line)), flush=True)\n",
    "import select\n"
    "n = 0\n"
    "while True:\n"
    "    n += 1\n"
    "    if n % 200000 == 0 and select.select([sys.stdin], [], [], 0)[0]:\n"
    "        print(repr(eval(sys.stdin.readline())), flush=True)\n",
)


class Target:
    """A running target and a way to ask it something."""

    def __init__(self, code: str, prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-I", "-S", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask_line() == "ready"
        self.pid = self.proc.pid

    def ask_line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, expression: str) -> object:
        """Evaluate ``expression`` in the target (which must still answer)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(expression + "\n")
        self.proc.stdin.flush()
        import ast

        return ast.literal_eval(self.ask_line())

    def leftovers(self) -> dict[str, object]:
        """What memscope could have left behind: modules, threads, path, gc callbacks."""
        deadline = time.monotonic() + 30
        while True:  # the agent thread ends right after writing its answer
            threads = self.ask("__import__('threading').active_count()")
            if threads == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return {
            "modules": self.ask("sorted(m for m in sys.modules if m.startswith('memscope'))"),
            "threads": threads,
            "state": self.ask("(list(sys.path), len(gc.callbacks)) == state0"),
            "hoard": self.ask("len(hoard)"),
        }

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def other_python() -> str | None:
    """A CPython of another major.minor on this machine (pyenv or PATH), or None."""
    import glob

    ours = sys.version_info.minor
    for minor in (10, 11, 12, 13, 14):
        if minor == ours:
            continue
        pattern = os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3.{minor}")
        candidates = sorted(glob.glob(pattern))
        on_path = shutil.which(f"python3.{minor}")
        if on_path and "/shims/" not in on_path:  # a pyenv shim is a shell script
            candidates.append(on_path)
        if candidates:
            return candidates[0]
    return None


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CLEAN = {"modules": [], "threads": 1, "state": True, "hoard": 20000}


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target(TARGET)
    try:
        yield t
    finally:
        t.close()


@pytest.mark.slow
def test_attach_deep_names_the_leak_and_the_target_lives_on(run: Run, target: Target) -> None:
    out = run("attach", str(target.pid), "--deep", "--json", timeout=240)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["pid"] == target.pid and data["label"] == f"attach {target.pid}"
    assert {"census", "containers"} <= set(data["sections"]), data["errors"]
    rows = {row["type"]: row for row in data["sections"]["census"]["by_type"]}
    assert rows["__main__.PlantedLeak"]["count"] == 20000
    [held] = [r for r in data["sections"]["containers"]["top"] if r["key"] == "__main__.hoard"]
    assert held["length"] == 20000 and held["where"] == "module __main__ attribute hoard"
    assert target.leftovers() == CLEAN
    # and it keeps running its own code
    assert target.ask("sum(1 for x in hoard if x.payload.startswith('leak-'))") == 20000


@pytest.mark.slow
def test_two_attaches_in_a_row_then_a_busy_target(run: Run, target: Target) -> None:
    for _ in range(2):
        out = run("attach", str(target.pid), "--top", "3", timeout=240)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"memscope snapshot 'attach {target.pid}' pid {target.pid}")
        assert "via ensure" in out.stderr  # blocked in read(): its own thread takes the GIL
    assert target.leftovers() == CLEAN

    busy = Target(BUSY)
    try:
        out = run("attach", str(busy.pid), "--json", timeout=240)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["pid"] == busy.pid
        assert "via pending" in out.stderr or "via ensure" in out.stderr
        assert busy.leftovers() == CLEAN
    finally:
        busy.close()


@pytest.mark.slow
def test_a_timed_out_attach_leaves_the_target_running(run: Run, target: Target) -> None:
    # the target's main thread holds the GIL in C until it gets SIGUSR1 (pause() called
    # through ctypes.PyDLL keeps the GIL): the pending call waits, the CLI gives up, and
    # the late agent finds no request when it finally runs
    assert target.proc.stdin is not None
    target.proc.stdin.write(
        "(__import__('signal').signal(__import__('signal').SIGUSR1, lambda *a: None), "
        "__import__('ctypes').PyDLL(None).pause())[1]\n"
    )
    target.proc.stdin.flush()
    deadline = time.monotonic() + 3  # a kernel that hides wchan: waiting 3 s does as well
    while "pause" not in Path(f"/proc/{target.pid}/wchan").read_text():
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    out = run("attach", str(target.pid), "--timeout", "1", timeout=240)
    assert out.returncode == 2
    assert "no answer within 1 s" in out.stderr and "never ran" in out.stderr
    os.kill(target.pid, signal.SIGUSR1)
    assert target.ask_line() == "-1"  # pause() returned to the program, which goes on
    assert target.leftovers() == CLEAN


TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


@pytest.mark.slow
@pytest.mark.skipif(TGKILL is None, reason="tgkill's syscall number is known for x86_64/aarch64")
def test_a_thread_holding_the_gil_in_c_is_waited_out_not_crashed(run: Run, target: Target) -> None:
    # another thread than the main one holds the GIL in C (pause() through ctypes.PyDLL)
    # while a third sleeps with the GIL released. Waiting for the GIL inside gdb could
    # not be undone safely (an unwound wait crashed the process with SIGSEGV), so the
    # bootstrap must be a pending call: the attach times out, the process lives on
    import ctypes

    target.ask(
        "__import__('threading').Thread("
        "target=__import__('time').sleep, args=(300,), daemon=True).start()"
    )
    assert target.proc.stdin is not None
    target.proc.stdin.write(
        "(__import__('signal').signal(__import__('signal').SIGUSR1, lambda *a: None), "
        "__import__('threading').Thread(target=lambda: (print(__import__('threading')"
        ".get_native_id(), flush=True), __import__('ctypes').PyDLL(None).pause()), "
        "daemon=True).start())[1]\n"
    )
    target.proc.stdin.flush()
    tid = int(target.ask_line())
    time.sleep(0.3)  # let it reach pause()
    out = run("attach", str(target.pid), "--timeout", "1", timeout=240)
    assert out.returncode == 2
    assert "no answer within 1 s" in out.stderr and "never ran" in out.stderr
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(TGKILL, target.pid, tid, signal.SIGUSR1) == 0  # wake that thread
    assert target.ask_line() == "None"  # the main thread got the GIL back and went on
    deadline = time.monotonic() + 30  # the woken thread, and the late agent, are ending
    while target.ask("__import__('threading').active_count()") != 2:  # main + the sleeper
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert target.ask("sorted(m for m in sys.modules if m.startswith('memscope'))") == []
    assert target.proc.poll() is None
    out = run("attach", str(target.pid), "--top", "1", timeout=240)  # and it can be attached
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_a_failed_attach_leaves_the_target_running(run: Run, target: Target) -> None:
    # a target where memscope cannot be imported (None in sys.modules blocks the import):
    # the agent answers with the error, the CLI exits 2, the target is as before
    target.ask("sys.modules.__setitem__('memscope', None)")
    out = run("attach", str(target.pid), timeout=240)
    assert out.returncode == 2
    assert f"PID {target.pid}: ModuleNotFoundError: import of memscope halted" in out.stderr
    target.ask("sys.modules.pop('memscope')")
    assert target.leftovers() == CLEAN


@pytest.mark.slow
def test_shell_pid_speaks_the_command_words_through_a_pipe(target: Target) -> None:
    commands = [
        "snapshot one",
        "python",
        "hoard.extend(PlantedLeak(i) for i in range(5000))",
        "print('printed', type(hoard[0]).__name__)",
        "1/0",
        "quit()",
        "snapshot two",
        "compare",
        "objects 3",
        "top 3",
        "python",
        "blob = [bytes(1000) for _ in range(3000)]",
        "quit()",
        "top 3",
        "traceback",
        "list",
        "gc",
        "top zero",
        "quit",
        "snapshot after-quit",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "memscope", "shell", "--pid", str(target.pid)],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"memscope shell in pid {target.pid}: snapshot [label], compare")
    assert lines[1].startswith("#0 'one', rss ")
    assert "printed PlantedLeak" in lines  # the shell thread's print reaches the client
    assert "ZeroDivisionError: division by zero" in out.stdout
    assert "* +5,000 __main__.PlantedLeak objects in __main__.hoard" in out.stdout
    assert any(line.endswith(" __main__.PlantedLeak") for line in lines)  # objects 3
    assert any("tracemalloc was not tracing: started it now" in line for line in lines)
    header = next(line for line in lines if line.startswith("traced "))
    site = lines[lines.index(header) + 1]
    assert site.lstrip().startswith("1.") and site.endswith("<memscope shell>:1")
    assert any(line.startswith("site 1: ") for line in lines)
    assert any(line.startswith("  #1 ") and "'two'" in line for line in lines)
    assert any(line.startswith("gc.collect(): ") for line in lines)
    assert "top: n must be an integer from 1 to 1000, got 'zero'" in lines
    assert "after-quit" not in out.stdout
    assert target.ask("len(hoard)") == 25000  # what the python prompt did stays done
    target.ask("hoard.__delitem__(slice(20000, None))")
    assert target.ask("__import__('tracemalloc').is_tracing()") is False  # stopped at the end
    assert target.leftovers() == CLEAN


def test_refusals_exit_2_with_the_cause(run: Run, tmp_path: os.PathLike[str]) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    out = run("attach", str(gone.pid))
    assert out.returncode == 2
    assert f"PID {gone.pid}: no such process" in out.stderr

    out = run("attach", "abc")
    assert out.returncode == 1 and "PID takes a process id" in out.stderr

    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        out = run("attach", str(sleeper.pid))
        assert out.returncode == 2
        assert "is not a CPython process" in out.stderr
        if sys.version_info < (3, 14):
            env = {**os.environ, "PATH": str(tmp_path)}  # no gdb on it
            no_gdb = subprocess.run(
                [sys.executable, "-m", "memscope", "attach", str(sleeper.pid)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert no_gdb.returncode == 2 and "gdb is not installed" in no_gdb.stderr
    finally:
        sleeper.kill()
        sleeper.wait(timeout=60)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_ptrace_refused_names_the_cause(target: Target) -> None:
    # an unprivileged user attaching to root's process: the kernel refuses ptrace
    out = subprocess.run(
        [*NOBODY, sys.executable, "-m", "memscope", "attach", str(target.pid)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert f"PID {target.pid}: ptrace was refused" in out.stderr
    assert "belongs to uid 0" in out.stderr
    assert target.leftovers() == CLEAN


@pytest.mark.skipif(other_python() is None, reason="no CPython of another version installed")
def test_another_python_version_is_refused(run: Run) -> None:
    python = other_python()
    assert python is not None
    other = subprocess.Popen(
        [python, "-I", "-S", "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "ready\n"
        out = run("attach", str(other.pid), timeout=240)
        assert out.returncode == 2
        ours = f"{sys.version_info.major}.{sys.version_info.minor}"
        assert f"this memscope runs on {ours}: run the CLI with the target's Python" in out.stderr
        assert other.poll() is None  # nothing was injected; it runs on
    finally:
        other.kill()
        other.wait(timeout=60)
        for stream in (other.stdin, other.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_root_attaches_to_another_users_process(run: Run) -> None:
    other = Target(TARGET, prefix=NOBODY)  # runs as nobody; the answer is written as nobody
    try:
        assert os.stat(f"/proc/{other.pid}").st_uid == 65534
        out = run("attach", str(other.pid), "--deep", "--json", timeout=240)
        assert out.returncode == 0, out.stderr
        rows = {
            r["type"]: r["count"] for r in json.loads(out.stdout)["sections"]["census"]["by_type"]
        }
        assert rows["__main__.PlantedLeak"] == 20000
        assert other.leftovers() == CLEAN
    finally:
        other.close()


@pytest.mark.slow
def test_attach_explain_names_the_holder_and_the_target_lives_on(run: Run, target: Target) -> None:
    out = run("attach", str(target.pid), "--explain", "__main__.PlantedLeak", timeout=240)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"why is __main__\.PlantedLeak at 0x[0-9a-f]+ alive\?", lines[0])
    assert lines[1] == "  module __main__ attribute hoard -> list[0] -> PlantedLeak"
    assert "20,000 live instances; 19,999 others share this path" in lines
    assert f"explained inside pid {target.pid}" in out.stderr
    # --json: the Explanation's fields, the chain's hops one by one
    out = run("attach", str(target.pid), "--explain", "__main__.PlantedLeak", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["chains"][0]["root"] == "module __main__"
    assert data["chains"][0]["hops"] == [
        "module __main__ attribute hoard",
        "list[0]",
        "PlantedLeak",
    ]
    assert (data["instances"], data["same_path"], data["partial"]) == (20000, 19999, False)
    assert data["retained_bytes"] > 0 and data["retained_objects"] >= 1
    assert target.leftovers() == CLEAN
    assert target.ask("sum(1 for x in hoard if x.payload.startswith('leak-'))") == 20000


def test_attach_explain_refuses_bad_input_before_attaching(run: Run, target: Target) -> None:
    for args, said in (
        (["--explain", "not a type"], "--explain takes a qualified type name"),
        (["--explain", ""], "--explain takes a qualified type name"),
        (["--explain", "x.Y", "--deep"], "--deep is for snapshots"),
    ):
        out = run("attach", str(target.pid), *args)
        assert out.returncode == 1 and said in out.stderr, (args, out.stderr)
    # a type with no live instance: the agent's one-line error, and the target goes on
    out = run("attach", str(target.pid), "--explain", "__main__.Nothing", timeout=240)
    assert out.returncode == 2 and "no live instance of __main__.Nothing" in out.stderr
    assert target.leftovers() == CLEAN
