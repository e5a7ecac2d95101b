"""The memscope shell's ``python`` command: a Python REPL with memscope's names and a few
helpers preloaded (snap, diff, top, containers, leaks, explain, snaps), over the tracker's
own reader and writer; and the reader of a stream (readline on a TTY, plain lines otherwise).
"""

from __future__ import annotations

import code
import collections
import contextlib
import sys
from collections.abc import Callable
from typing import IO, Any

SNAPSHOTS_KEPT = 50  # snap() keeps the last 50; older ones drop off
HELP = """\
snap(label=None, deep=True)  take a snapshot, keep it in snaps (the last {kept}), print its report
diff(i=-2, j=-1)             compare snaps[i] and snaps[j] (with one snapshot: it and now)
top(n=10)                    the n largest types by size, from a deep census taken now
containers(n=10)             the n longest containers now, and who holds them
leaks()                      cycles, uncollectable garbage and steady growth (find_leaks)
explain(obj_or_type)         why an object (or every object of a type) is alive
snaps                        the kept snapshots; memscope: the package
quit() or end of input       back to the memscope shell's commands"""


class Helpers:
    """The shell's helper functions over one bounded list of snapshots."""

    def __init__(self, write: Callable[[str], object]) -> None:
        import memscope

        self._memscope = memscope
        self._write = write
        self.snaps: collections.deque[Any] = collections.deque(maxlen=SNAPSHOTS_KEPT)
        self.taken = 0

    def _say(self, text: str) -> None:
        self._write(text if text.endswith("\n") else text + "\n")

    def snap(self, label: str | None = None, deep: bool = True, top: int = 5) -> None:
        """Take a snapshot, keep it and print its report."""
        shot = self._memscope.snapshot(label=label or f"shell #{self.taken}", deep=deep)
        self.taken += 1
        self.snaps.append(shot)
        self._say(shot.report(top=top))

    def diff(self, i: int = -2, j: int = -1, top: int = 15) -> None:
        """Print what changed from snaps[i] to snaps[j] (one kept snapshot: it and now)."""
        if not self.snaps:
            self._say("no snapshots yet: snap() takes one")
            return
        if len(self.snaps) == 1:
            first = self.snaps[0]
            self.snap(deep="census" in first, top=1)
        try:
            a, b = self.snaps[i], self.snaps[j]
        except IndexError:
            n = len(self.snaps)
            self._say(f"diff: no snapshot {i} or {j}: snaps holds {n} (0..{n - 1})")
            return
        self._say(self._memscope.compare(a, b).summary(top=top))

    def top(self, n: int = 10) -> None:
        """Print the ``n`` largest types by shallow size, from a census taken now."""
        from .._base.units import format_bytes

        shot = self._memscope.snapshot(label="top", deep=True, collectors=["census"])
        census = shot.get("census")
        if census is None:
            self._say(f"top: the census failed: {shot.errors.get('census')}")
            return
        lines = [f"{census['objects_total']:,} objects, {format_bytes(census['size_bytes_total'])}"]
        for row in census["by_type"][:n]:
            lines.append(
                f"  {format_bytes(row['size_bytes']):>10}  {row['count']:>10,}  {row['type']}"
            )
        self._say("\n".join(lines))

    def containers(self, n: int = 10) -> None:
        """Print the ``n`` longest containers now and who holds them."""
        shot = self._memscope.snapshot(label="containers", deep=True, collectors=["containers"])
        section = shot.get("containers")
        if section is None:
            self._say(f"containers: the scan failed: {shot.errors.get('containers')}")
            return
        self._say("\n".join(section.summary_lines(n)))

    def leaks(self) -> None:
        """Print what find_leaks() finds: cycles, garbage, steady growth."""
        self._say(str(self._memscope.find_leaks()))

    def explain(self, obj_or_type: object, **options: Any) -> None:
        """Print why ``obj_or_type`` is alive (memscope.explain)."""
        self._say(str(self._memscope.explain(obj_or_type, **options)))

    def help(self) -> None:
        """Print the helpers."""
        self._say(HELP.format(kept=SNAPSHOTS_KEPT))


def namespace(helpers: Helpers, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shell's names: ``base`` (the caller's), memscope, and the helpers."""
    names: dict[str, Any] = dict(base or {})
    names.setdefault("__name__", "__memscope_shell__")
    names.update(
        memscope=helpers._memscope,
        snap=helpers.snap,
        diff=helpers.diff,
        top=helpers.top,
        containers=helpers.containers,
        leaks=helpers.leaks,
        explain=helpers.explain,
        shelp=helpers.help,
        snaps=helpers.snaps,
        # site's quit() closes sys.stdin first: in someone else's process that is theirs
        quit=_leave,
        exit=_leave,
    )
    return names


def _leave(code: object = None) -> None:
    """Leave the shell (the program goes on)."""
    raise SystemExit(code)


class Console(code.InteractiveConsole):
    """An InteractiveConsole reading from ``read_line`` and writing to ``write``."""

    def __init__(
        self,
        names: dict[str, Any],
        read_line: Callable[[str], str],
        write: Callable[[str], object],
    ) -> None:
        super().__init__(names, filename="<memscope shell>")
        self._read_line = read_line
        self._out = write

    def raw_input(self, prompt: str = "") -> str:
        """The next line (EOFError at the end)."""
        return self._read_line(prompt)

    def write(self, data: str) -> None:
        """Tracebacks and messages go where the output goes."""
        self._out(data)


def stream_reader(stream: IO[str], prompts: bool, out: IO[str]) -> Callable[[str], str]:
    """``read_line`` for a stream: input() with readline on a TTY, plain lines otherwise."""
    if prompts:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - input() gets line editing and history

        def read_tty(prompt: str) -> str:
            return input(prompt)

        return read_tty

    def read_plain(prompt: str) -> str:
        line = stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    return read_plain


def echo_hook(write: Callable[[str], object]) -> Callable[[object], None]:
    """A displayhook that echoes a value where the shell writes."""
    import builtins

    def hook(value: object) -> None:
        if value is None:
            return
        builtins._ = value  # type: ignore[attr-defined]
        write(repr(value) + "\n")

    return hook


def run_console(console: Console, write: Callable[[str], object]) -> None:
    """Run ``console`` until quit() or the end of input; the echo goes to ``write``."""
    hook = sys.displayhook
    sys.displayhook = echo_hook(write)
    try:
        console.interact(banner="", exitmsg="")
    except SystemExit:
        pass  # quit() or exit(): leave the shell, not the program
    finally:
        sys.displayhook = hook
