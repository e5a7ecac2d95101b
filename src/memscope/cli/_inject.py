"""Running memscope's agent inside another CPython process: ``sys.remote_exec`` on 3.14+, gdb
before. Used by ``memscope attach`` and ``memscope shell --pid``.

The CLI writes the request and a copy of the agent into a private directory (0700, owned
by the target's user), makes the target run a bootstrap that starts the agent in a thread,
and waits for the answer file. The target keeps running whatever happens: gdb stops it
only for the moments of the injection, and a timed-out attach removes the directory so a
late agent finds nothing to answer and ends.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from . import CLIError
from ._common import GONE

HERE = Path(__file__).resolve().parent
AGENT = HERE / "_agent.py"
GDB_SCRIPT = HERE / "_gdb_script.py"
BUSY_RETRIES = 5  # the gdb pass finds no safe thread (all in malloc, say): try again
POLL_SECONDS = 0.05
ANSWER_BYTES = 256 << 20  # an answer larger than this is refused (snapshots are bounded)
GDB_SECONDS = 10.0  # gdb's own allowance at least (starting it and reading symbols takes a second)


def src_dir() -> str:
    """The directory this install of memscope is imported from (what the target borrows)."""
    return str(HERE.parent.parent)


def extra_dirs() -> list[str]:
    """Directories of memscope's dependencies (psutil), appended to the target's path."""
    found: list[str] = []
    try:
        psutil = importlib.import_module("psutil")
    except ImportError:
        return found
    if not psutil.__file__:
        return found
    where = Path(psutil.__file__).resolve().parent.parent
    if str(where) != src_dir():
        found.append(str(where))
    return found


def bootstrap(directory: str) -> str:
    """The Python the target runs first: start the agent thread, bind no name, raise nothing."""
    d = json.dumps(directory)
    return (
        "try:\n"
        "    __import__('threading').Thread(target=lambda d: exec(compile("
        "open(d + '/_agent.py', 'rb').read(), d + '/_agent.py', 'exec'), "
        "{'__name__': '__memscope_agent__', '__memscope_dir__': d}), "
        f"args=({d},), name='memscope-attach', daemon=True).start()\n"
        "except BaseException:\n"
        "    pass\n"
    )


def _ptrace_advice(pid: int) -> str:
    """Why ptrace was refused, and what to do, from what this machine says."""
    reasons = []
    try:
        scope = Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError:
        scope = None
    try:
        target_uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        target_uid = None
    uid = os.geteuid()
    if scope == "3":
        reasons.append("kernel.yama.ptrace_scope is 3: no process may be attached to until reboot")
    elif scope == "2":
        reasons.append(
            "kernel.yama.ptrace_scope is 2: only a process with CAP_SYS_PTRACE may attach"
        )
    elif scope == "1":
        reasons.append(
            "kernel.yama.ptrace_scope is 1: only a parent may attach; run as root, give the CLI "
            "CAP_SYS_PTRACE, or `sudo sysctl kernel.yama.ptrace_scope=0`"
        )
    if target_uid is not None and target_uid != uid and uid != 0:
        reasons.append(
            f"the process belongs to uid {target_uid}, not you (uid {uid}): run as that user"
        )
    if not reasons:
        reasons.append(
            "the kernel refused ptrace: in a container add CAP_SYS_PTRACE "
            "(docker run --cap-add=SYS_PTRACE) or loosen its seccomp profile, and attach "
            "from the same container (PID namespace) as the process"
        )
    return "; ".join(reasons)


def check_target(pid: int) -> None:
    """CLIError (exit 2) if ``pid`` is not a live process; exit 1 for an impossible pid."""
    if pid < 1:
        raise CLIError(f"PID must be a process id (an integer >= 1), got {pid}", 1)
    if pid == os.getpid():
        raise CLIError(f"PID {pid} is this CLI itself; use `memscope report` for that", 1)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        raise CLIError(f"PID {pid}: no such process (gone, or never existed)", GONE) from None
    if state == "Z":
        raise CLIError(f"PID {pid}: the process is a zombie (exited, not yet reaped)", GONE)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def private_dir(pid: int) -> Iterator[str]:
    """A 0700 directory only the caller and the target's user can read; removed at the end."""
    directory = tempfile.mkdtemp(prefix="memscope-attach-")
    try:
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            if os.geteuid() == 0 and uid != 0:
                os.chown(directory, uid, -1)  # the target writes its answer here
        except OSError:
            pass
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run_gdb(pid: int, directory: str, timeout: float) -> dict[str, str]:
    """Inject with gdb; returns the MEMSCOPE lines gdb printed, by word."""
    gdb = shutil.which("gdb")
    if gdb is None:
        raise CLIError(
            "gdb is not installed; attaching to CPython "
            f"{sys.version_info.major}.{sys.version_info.minor} needs it "
            "(apt-get install gdb, dnf install gdb), or use Python 3.14+ (sys.remote_exec)",
            GONE,
        )
    plan = {
        "pid": pid,
        "directory": directory,
        "bootstrap": bootstrap(directory),
        "version_prefix": f"{sys.version_info.major}.{sys.version_info.minor}.",
    }
    # the plan stays out of the shared directory: when root attaches to another user's
    # process, that user owns the directory and could swap files in it
    with tempfile.TemporaryDirectory(prefix="memscope-gdb-") as own:
        plan_path = os.path.join(own, "plan.json")
        with open(plan_path, "w") as fh:
            json.dump(plan, fh)
        return _gdb_pass(gdb, pid, plan_path, timeout)


def _gdb_pass(gdb: str, pid: int, plan_path: str, timeout: float) -> dict[str, str]:
    """One gdb run over the plan; the MEMSCOPE lines it printed, by word."""
    cmd = [gdb, "-nx", "-batch", "-p", str(pid), "-x", str(GDB_SCRIPT)]
    env = {**os.environ, "MEMSCOPE_GDB_PLAN": plan_path}
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # gdb is inside a call that waits (for the GIL, say). Cutting it short is not safe:
        # SIGINT makes gdb signal the whole process group, undoing a wait inside the GIL's
        # condition variable crashes the process later, and a killed gdb leaves its
        # breakpoints in the code. So gdb is left to finish on its own and detach.
        raise CLIError(
            f"PID {pid}: the injection did not finish within {timeout:g} s (a thread holds "
            f"the GIL in native code?); gdb (pid {proc.pid}) is left to finish it and detach, "
            "so the process is not harmed; its answer will find nobody",
            GONE,
        ) from None
    said: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("MEMSCOPE "):
            word, _, text = line[9:].partition(" ")
            said[word] = text
    if not said or "NOT-ATTACHED" in said:
        text = " ".join(err.split())
        if "ptrace" in err and ("not permitted" in err or "Operation not permitted" in err):
            raise CLIError(f"PID {pid}: ptrace was refused: {_ptrace_advice(pid)}", GONE)
        if "No such process" in err or not _alive(pid):
            raise CLIError(f"PID {pid}: no such process (gone, or never existed)", GONE)
        raise CLIError(f"PID {pid}: gdb could not attach: {text[-300:] or 'no output'}", GONE)
    return said


def _failure(said: str) -> str:
    """gdb's reason for a failed call, with what to do where the cause is known."""
    if "extended state" in said:
        # gdb cannot set up any call in the target: the process was not changed
        return (
            f"{said} (this gdb cannot write this CPU's extended registers on this kernel, "
            "so it cannot call a function in any process; the target was not touched; "
            "a newer gdb, or Python 3.14+ with sys.remote_exec, avoids it)"
        )
    return said


def _inject_gdb(pid: int, directory: str, timeout: float) -> str:
    """gdb passes until one injects; returns how ('ensure ...' or 'pending ...')."""
    for attempt in range(BUSY_RETRIES):
        said = _run_gdb(pid, directory, timeout)
        if "NOT-CPYTHON" in said:
            raise CLIError(
                f"PID {pid} is not a CPython process (no {said['NOT-CPYTHON'].split(',')[0]} "
                "symbol): memscope attach works on CPython only; try `memscope report --pid`",
                GONE,
            )
        if "FAILED" in said:
            raise CLIError(f"PID {pid}: the injection failed: {_failure(said['FAILED'])}", GONE)
        version = said.get("VERSION", "?")
        ours = f"{sys.version_info.major}.{sys.version_info.minor}"
        if "INJECTED" in said:
            how = said["INJECTED"]
            if how.split()[-1] not in ("0",):
                raise CLIError(f"PID {pid}: the bootstrap did not run ({how})", GONE)
            return how
        if "BUSY" not in said:
            raise CLIError(
                f"PID {pid} runs Python {version}; this memscope runs on {ours}: run the CLI "
                f"with the target's Python (python{'.'.join(version.split('.')[:2])} -m memscope)",
                GONE,
            )
        time.sleep(0.1 * (attempt + 1))
    raise CLIError(
        f"PID {pid}: no thread was at a safe point in {BUSY_RETRIES} tries "
        "(all busy in malloc or the GIL); try again",
        GONE,
    )


def _inject_remote_exec(pid: int, directory: str) -> str:
    """Python 3.14+: the interpreter runs the bootstrap file at its next safe point."""
    script = os.path.join(directory, "bootstrap.py")
    with open(script, "w") as fh:
        fh.write(bootstrap(directory))
    os.chmod(script, 0o600)
    remote_exec: Any = getattr(sys, "remote_exec")  # noqa: B009 - 3.14+ only
    try:
        remote_exec(pid, script)
    except PermissionError as exc:
        raise CLIError(f"PID {pid}: ptrace was refused: {_ptrace_advice(pid)}", GONE) from exc
    except ProcessLookupError as exc:
        raise CLIError(f"PID {pid}: no such process (gone, or never existed)", GONE) from exc
    except (OSError, RuntimeError) as exc:  # not Python, another version, disabled
        raise CLIError(f"PID {pid}: sys.remote_exec refused: {exc}", GONE) from exc
    return "remote_exec"


def _read_answer(path: str, pid: int) -> dict[str, Any]:
    """The agent's answer: not through a symlink, bounded, JSON (the target wrote it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(ANSWER_BYTES + 1)
    except OSError as exc:
        raise CLIError(f"PID {pid}: cannot read the answer: {exc.strerror or exc}", GONE) from exc
    if len(data) > ANSWER_BYTES:
        raise CLIError(f"PID {pid}: the answer is over {ANSWER_BYTES >> 20} MiB", GONE)
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise CLIError(f"PID {pid}: the answer is not JSON: {exc}", GONE) from exc
    if not isinstance(answer, dict):
        raise CLIError(f"PID {pid}: the answer is not a JSON object", GONE)
    return answer


def agent(
    pid: int,
    mode: str,
    *,
    timeout: float,
    deep: bool = False,
    label: str = "attach",
    on_started: Callable[[str], object] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the agent in ``pid`` and return its answer (``{"ok": True, ...}``).

    ``on_started(directory)`` is called once the injection is done (the shell connects
    then); ``options`` are more fields of the request (the explain mode's type name);
    CLIError with exit 2 for every way the target cannot be reached.
    """
    check_target(pid)
    with private_dir(pid) as directory:
        request = {
            "mode": mode,
            "deep": deep,
            "label": label,
            "python": list(sys.version_info[:2]),
            "paths": [src_dir()],
            "extra_paths": extra_dirs(),
            **(options or {}),
        }
        for name, data in (("request.json", json.dumps(request)), ("_agent.py", AGENT.read_text())):
            path = os.path.join(directory, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                fh.write(data)
            with suppress(OSError):
                os.chown(path, os.stat(directory).st_uid, -1)
        if sys.version_info >= (3, 14):
            how = _inject_remote_exec(pid, directory)
        else:
            how = _inject_gdb(pid, directory, max(timeout, GDB_SECONDS))
        deadline = time.monotonic() + timeout
        if on_started is not None:
            on_started(directory)
            deadline = time.monotonic() + timeout  # a shell session takes its own time
        result = os.path.join(directory, "result.json")
        while not os.path.exists(result):
            if not _alive(pid):
                raise CLIError(f"PID {pid}: the process exited during the attach", GONE)
            if time.monotonic() > deadline:
                ran = os.path.exists(os.path.join(directory, "started"))
                state = (
                    "the agent started but did not finish (a deep scan of a large heap?); "
                    "give it a larger --timeout"
                    if ran
                    else "the agent never ran (the main thread ran no Python since: blocked "
                    "in native code?); it will find nothing to answer when it runs"
                )
                raise CLIError(f"PID {pid}: no answer within {timeout:g} s: {state}", GONE)
            time.sleep(POLL_SECONDS)
        answer = _read_answer(result, pid)
    answer["injected"] = how
    if not answer.get("ok"):
        raise CLIError(f"PID {pid}: {answer.get('error', 'the agent failed')}", GONE)
    return answer
