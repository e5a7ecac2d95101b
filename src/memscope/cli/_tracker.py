"""The command words of ``memscope shell``, ``shell --pid`` and ``memscope.interactive()``.

A ``cmd.Cmd`` over two callables, ``read_line(prompt)`` (EOFError at the end of input) and
``write(text)``, so the same tracker runs on a terminal, on a pipe, and inside another
process over the attach socket. Every command's failure is one line; the shell goes on.
"""

from __future__ import annotations

import cmd
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from ._repl import SNAPSHOTS_KEPT, Console, Helpers, namespace, run_console

TRACE_FRAMES = 25  # frames per allocation when the shell starts tracemalloc itself
MAX_N = 1000  # the largest n any command accepts
HISTORY_LINES = 1000  # the readline history file keeps this many lines
HISTORY_FILE = "~/.memscope_history"

# command -> (arguments, one line); the order help shows
COMMANDS: dict[str, tuple[str, str]] = {
    "snapshot": ("[label]", f"take a deep snapshot and keep it (the last {SNAPSHOTS_KEPT})"),
    "compare": ("[i] [j]", "what changed from snapshot #i to #j (default: the last two)"),
    "top": ("[n]", "the n largest allocation sites (tracemalloc; started if needed)"),
    "traceback": ("[n]", "the traceback of the n-th site of top (default: the first)"),
    "current": ("", "a cheap snapshot now: RSS, fds, gc, threads, allocator"),
    "objects": ("[n]", "the n largest types by size (a census of the heap now)"),
    "containers": ("[n]", "the n longest containers now, and who holds them"),
    "explain": ("<type or expr>", "why it is alive: reference chains and retained size"),
    "leaks": ("", "cycles, uncollectable garbage and steady growth (memscope.find_leaks)"),
    "gc": ("", "run gc.collect() and say what it freed"),
    "list": ("", "the kept snapshots"),
    "python": ("", "a Python prompt with memscope's helpers; quit() comes back here"),
    "help": ("[command]", "the commands, or one command"),
    "quit": ("", "leave the shell (the program goes on); also exit, or the end of input"),
}


class _Out:
    """A file-like ``write`` for cmd.Cmd's own output (help)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write

    def write(self, text: str) -> int:
        self._write(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush: ``write`` flushes."""


class BadArgument(ValueError):
    """A command's argument was not accepted (the message names it)."""


def _count(command: str, args: list[str], default: int) -> int:
    """The one optional ``n`` of ``command``: an int from 1 to MAX_N."""
    if len(args) > 1:
        raise BadArgument(f"{command}: takes at most one argument (n), got {len(args)}")
    if not args:
        return default
    try:
        n = int(args[0])
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_N:
        raise BadArgument(f"{command}: n must be an integer from 1 to {MAX_N}, got {args[0]!r}")
    return n


class Tracker(cmd.Cmd):
    """The interactive tracker: snapshot, compare, top, traceback, current, objects, ..."""

    prompt = "(memscope) "

    def __init__(
        self,
        read_line: Callable[[str], str],
        write: Callable[[str], object],
        names: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(stdout=_Out(write))  # type: ignore[arg-type]
        self._read_line = read_line
        self._write = write
        self.helpers = Helpers(write)
        self._names = namespace(self.helpers, names)
        self._started_tracing = False
        self._warm = False

    # -- the loop ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Write ``text`` and a newline."""
        self._write(text if text.endswith("\n") else text + "\n")

    def run(self) -> None:
        """Read and run commands until quit or the end of input; then tidy up."""
        try:
            while True:
                try:
                    line = self._read_line(self.prompt)
                except EOFError:
                    break
                except KeyboardInterrupt:
                    self.say("\nKeyboardInterrupt")
                    continue
                if self.onecmd(line):
                    break
        finally:
            self.close()

    def close(self) -> None:
        """Stop tracemalloc if this shell started it (its traces go with it)."""
        if self._started_tracing:
            from ..collectors.tracing import stop_tracing

            stop_tracing()
            self._started_tracing = False

    def onecmd(self, line: str) -> bool:
        """Run one line; a bad argument or a failure is one line, and the shell goes on."""
        line = line.strip()
        if not line or line.startswith("#"):
            return False
        word = line.split(None, 1)[0]
        try:
            return bool(super().onecmd(line))
        except BadArgument as exc:
            self.say(str(exc))
        except KeyboardInterrupt:
            self.say(f"{word}: interrupted")
        except Exception as exc:  # contained: the shell must not die of one command
            self.say(f"{word}: failed: {type(exc).__name__}: {exc}")
        return False

    def emptyline(self) -> bool:
        """An empty line does nothing (not cmd.Cmd's repeat of the last command)."""
        return False

    def default(self, line: str) -> None:
        """An unknown command: say which are known."""
        word = line.split(None, 1)[0]
        self.say(f"unknown command {word!r}; commands: {', '.join(COMMANDS)} (help COMMAND)")

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        """Complete the command words."""
        return [name for name in (*COMMANDS, "exit") if name.startswith(text)]

    # -- snapshots --------------------------------------------------------------------------

    def _numbered(self) -> list[tuple[int, Any]]:
        """The kept snapshots with their numbers (#0 is the first the shell took)."""
        first = max(0, self.helpers.taken - len(self.helpers.snaps))
        return [(first + k, snap) for k, snap in enumerate(self.helpers.snaps)]

    def _take(self, label: str | None) -> tuple[int, Any]:
        import memscope

        number = self.helpers.taken
        started = time.monotonic()
        if not self._warm:
            # the first deep snapshot imports and caches what the scans need; one thrown
            # away first keeps that out of the first compare
            memscope.snapshot(label="warm-up", deep=True)
            self._warm = True
        shot = memscope.snapshot(label=label or f"#{number}", deep=True)
        self.helpers.taken += 1
        self.helpers.snaps.append(shot)
        self.say(f"#{number} {_brief(shot)}, {time.monotonic() - started:.2f} s")
        return number, shot

    def do_snapshot(self, arg: str) -> bool:
        """snapshot [label]: take a deep snapshot and keep it (the last 50 are kept)."""
        label = arg.strip() or None
        if label is not None and len(label) > 200:
            raise BadArgument(f"snapshot: label must be at most 200 characters, got {len(label)}")
        self._take(label)
        return False

    def _pick(self, name: str, text: str, numbered: list[tuple[int, Any]]) -> Any:
        try:
            wanted = int(text)
        except ValueError:
            wanted = None
        if wanted is not None and wanted < 0 and -wanted <= len(numbered):
            return numbered[wanted][1]
        for number, snap in numbered:
            if number == wanted:
                return snap
        kept = f"#{numbered[0][0]}..#{numbered[-1][0]}, or -1 for the last"
        raise BadArgument(f"compare: {name} must be a kept snapshot ({kept}), got {text!r}")

    def do_compare(self, arg: str) -> bool:
        """compare [i] [j]: what changed from snapshot #i to #j (default: the last two)."""
        import memscope

        args = arg.split()
        if len(args) > 2:
            raise BadArgument(f"compare: takes at most two arguments (i j), got {len(args)}")
        numbered = self._numbered()
        if not numbered:
            self.say("compare: no snapshots yet; `snapshot [label]` takes one")
            return False
        if len(numbered) == 1 and not args:
            self.say(f"compare: one snapshot kept; taking #{self.helpers.taken} to compare with")
            self._take(None)
            numbered = self._numbered()
        i = self._pick("i", args[0], numbered) if args else numbered[-2][1]
        j = self._pick("j", args[1], numbered) if len(args) > 1 else numbered[-1][1]
        self.say(memscope.compare(i, j).summary(top=15))
        return False

    def do_list(self, arg: str) -> bool:
        """list: the kept snapshots (number, label, time, RSS, objects)."""
        if arg.strip():
            raise BadArgument("list: takes no arguments")
        numbered = self._numbered()
        if not numbered:
            self.say("no snapshots yet; `snapshot [label]` takes one")
            return False
        lines = [f"{len(numbered)} kept (of the last {SNAPSHOTS_KEPT}):"]
        for number, snap in numbered:
            when = time.strftime("%H:%M:%S", time.localtime(snap.timestamp))
            lines.append(f"  #{number:<3} {when}  {_brief(snap)}")
        self.say("\n".join(lines))
        return False

    def do_current(self, arg: str) -> bool:
        """current: a cheap snapshot now (RSS, fds, gc, threads, allocator)."""
        import memscope

        if arg.strip():
            raise BadArgument("current: takes no arguments")
        self.say(memscope.snapshot(label="current").report(top=5))
        return False

    # -- tracemalloc ------------------------------------------------------------------------

    def _sites(self, command: str, n: int) -> dict[str, Any]:
        import tracemalloc

        from ..collectors.tracing import TracemallocCollector, start_tracing

        if not tracemalloc.is_tracing():
            start_tracing(TRACE_FRAMES)
            self._started_tracing = True
            self.say(
                f"{command}: tracemalloc was not tracing: started it now ({TRACE_FRAMES} frames), "
                "so the sites count what is allocated from now on; it stops when the shell ends"
            )
        data = TracemallocCollector(top=min(MAX_N, 2 * n + 50)).collect()
        data["top"] = [row for row in data["top"] if not _the_shells_own(row)][:n]
        return data

    def do_top(self, arg: str) -> bool:
        """top [n]: the n largest allocation sites now (tracemalloc; started if needed)."""
        from .._base.units import format_bytes
        from ..collectors.tracing import _shorten

        n = _count("top", arg.split(), 10)
        data = self._sites("top", n)
        if not data["top"]:
            self.say("top: nothing traced yet (outside memscope's own allocations)")
            return False
        lines = [
            f"traced {format_bytes(data['current_bytes'])} "
            f"(peak {format_bytes(data['peak_bytes'])}) in {data['blocks']:,} blocks "
            f"at {data['sites']:,} sites; the top {len(data['top'])}, the shell's own left out:"
        ]
        for rank, row in enumerate(data["top"], 1):
            filename, _, line = str(row["site"]).rpartition(":")
            lines.append(
                f"  {rank:>3}. {format_bytes(row['size_bytes']):>10} in {row['count']:>8,} "
                f"blocks  {_shorten(filename)}:{line}"
            )
        self.say("\n".join(lines))
        return False

    def do_traceback(self, arg: str) -> bool:
        """traceback [n]: the traceback of the n-th largest allocation site (default 1)."""
        import linecache

        from .._base.units import format_bytes
        from ..collectors.tracing import _shorten

        n = _count("traceback", arg.split(), 1)
        data = self._sites("traceback", n)
        if len(data["top"]) < n:
            found = len(data["top"])
            self.say(f"traceback: n is {n}, but {found} site(s) outside the shell's own are traced")
            return False
        row = data["top"][n - 1]
        frames = list(row.get("traceback") or [row["site"]])
        folded = _machinery_frames(frames)
        folded = folded if folded < len(frames) else 0
        lines = [
            f"site {n}: {format_bytes(row['size_bytes'])} in {row['count']:,} blocks, "
            f"the largest traceback (most recent call last):"
        ]
        if folded:
            lines.append(f"  ... {folded} frame(s) of the memscope shell itself")
        for frame in frames[folded:]:
            filename, _, number = str(frame).rpartition(":")
            lines.append(f'  File "{_shorten(filename)}", line {number}')
            source = linecache.getline(filename, int(number)).strip() if number.isdigit() else ""
            if source:
                lines.append(f"    {source}")
        if data["frames"] == 1:
            lines.append(
                "  (tracemalloc keeps 1 frame per allocation here; "
                f"memscope.start_tracing({TRACE_FRAMES}) keeps more, forgetting what was traced)"
            )
        self.say("\n".join(lines))
        return False

    # -- the heap now -----------------------------------------------------------------------

    def do_objects(self, arg: str) -> bool:
        """objects [n]: the n largest types by size, from a census of the heap now."""
        self.helpers.top(_count("objects", arg.split(), 10))
        return False

    def do_containers(self, arg: str) -> bool:
        """containers [n]: the n longest containers now, and who holds them."""
        self.helpers.containers(_count("containers", arg.split(), 10))
        return False

    def do_explain(self, arg: str) -> bool:
        """explain <type or expr>: why it is alive (chains from roots; retained size)."""
        import memscope

        text = arg.strip()
        if not text:
            raise BadArgument(
                "explain: takes a type name (like app.models.Model) or an expression "
                "of the python prompt's names, got nothing"
            )
        self.say(memscope.explain(self._explained(text)).report())
        return False

    def _explained(self, text: str) -> object:
        """What ``explain TEXT`` asks about: the value of TEXT, or TEXT as a type name.

        A dotted name is evaluated first (``Model``, ``app.models.Model`` after an import);
        it is a type name when its first name is unknown, or names a module that lacks
        the rest (``app`` imported, ``app.models`` not); other failures are the user's.
        """
        import types

        dotted = all(part.isidentifier() for part in text.split("."))
        try:
            return eval(text, self._names)  # the user typed it at their own shell
        except NameError:
            if dotted:
                return text
            raise
        except AttributeError:
            head = self._names.get(text.split(".", 1)[0])
            if dotted and isinstance(head, types.ModuleType):
                return text
            raise

    def do_leaks(self, arg: str) -> bool:
        """leaks: cycles, uncollectable garbage and steady growth (memscope.find_leaks())."""
        if arg.strip():
            raise BadArgument("leaks: takes no arguments")
        self.helpers.leaks()
        return False

    def do_gc(self, arg: str) -> bool:
        """gc: run gc.collect() and say what it freed."""
        import gc

        from .._base.proc import rss_bytes
        from .._base.units import format_bytes, format_value

        if arg.strip():
            raise BadArgument("gc: takes no arguments")
        before, rss_before, garbage = len(gc.get_objects()), rss_bytes(), len(gc.garbage)
        started = time.perf_counter()
        found = gc.collect()
        took = time.perf_counter() - started
        after, rss_after = len(gc.get_objects()), rss_bytes()
        rss = ""
        if rss_before is not None and rss_after is not None:
            change = format_value(rss_after - rss_before, "bytes", signed=True)
            rss = f"; rss {format_bytes(rss_before)} -> {format_bytes(rss_after)} ({change})"
        self.say(
            f"gc.collect(): {found:,} unreachable objects found in {took * 1000:.1f} ms; "
            f"gc-tracked objects {before:,} -> {after:,} ({after - before:+,}); "
            f"gc.garbage {garbage:,} -> {len(gc.garbage):,} (uncollectable){rss}"
        )
        return False

    # -- the rest ---------------------------------------------------------------------------

    def do_python(self, arg: str) -> bool:
        """python: a Python prompt with memscope's helpers; quit() comes back to the shell."""
        if arg.strip():
            raise BadArgument("python: takes no arguments")
        self.say(
            "Python prompt: snap(), diff(), top(), containers(), leaks(), explain(), snaps, "
            "memscope, shelp(); quit() or the end of input comes back to the memscope shell"
        )
        console = Console(self._names, self._read_line, self._write)
        run_console(console, self._write)
        self.say("back in the memscope shell")
        return False

    def do_help(self, arg: str) -> bool:
        """help [command]: the commands, or one command."""
        word = arg.strip()
        if not word:
            width = max(len(f"{name} {args}") for name, (args, _) in COMMANDS.items())
            lines = [
                f"  {f'{name} {args}'.strip():<{width}}  {text}"
                for name, (args, text) in COMMANDS.items()
            ]
            self.say("commands:\n" + "\n".join(lines))
            return False
        if word not in COMMANDS and word != "exit":
            raise BadArgument(f"help: no command {word!r}; commands: {', '.join(COMMANDS)}")
        args, text = COMMANDS["quit" if word == "exit" else word]
        self.say(f"{word} {args}".strip() + f": {text}")
        return False

    def do_quit(self, arg: str) -> bool:
        """quit: leave the shell (the program goes on)."""
        return True

    do_exit = do_quit


def _machinery_frames(frames: list[str]) -> int:
    """How many leading frames are the shell's own: up to its last (memscope, cmd, code)."""
    import code as code_module

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    ours = {os.path.abspath(cmd.__file__), os.path.abspath(code_module.__file__)}
    last = 0
    for k, frame in enumerate(frames):
        filename = str(frame).rpartition(":")[0]
        if filename.startswith(package) or filename in ours or filename == "<frozen runpy>":
            last = k + 1
    return last


def _the_shells_own(row: dict[str, Any]) -> bool:
    """Whether an allocation site is the shell's own work (not code run at its prompt)."""
    frames = list(row.get("traceback") or ())
    folded = _machinery_frames(frames)
    if not folded:
        return False
    return folded == len(frames) or not str(frames[folded]).startswith("<memscope shell>:")


def _brief(snap: Any) -> str:
    """One line about a snapshot: its label, RSS and census totals."""
    from .._base.units import format_bytes

    parts = [repr(snap.label)]
    process, census = snap.get("process"), snap.get("census")
    if process is not None and process.get("rss_bytes") is not None:
        parts.append(f"rss {format_bytes(process['rss_bytes'])}")
    if census is not None:
        parts.append(
            f"{census['objects_total']:,} objects ({format_bytes(census['size_bytes_total'])})"
        )
    else:
        parts.append("cheap" if "census" not in snap.errors else "census failed")
    if snap.errors:
        parts.append(f"{len(snap.errors)} collector(s) failed: {', '.join(sorted(snap.errors))}")
    return ", ".join(parts)


@contextlib.contextmanager
def history(enabled: bool) -> Iterator[None]:
    """On a terminal: readline's line editing, and a bounded history file kept across runs."""
    if not enabled:
        yield
        return
    try:
        import readline
    except ImportError:
        yield
        return
    path = os.path.expanduser(HISTORY_FILE)
    completer = readline.get_completer()
    words = [*COMMANDS, "exit"]

    def complete(text: str, state: int) -> str | None:
        matches = [w for w in words if w.startswith(text)]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    readline.set_history_length(HISTORY_LINES)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    try:
        yield
    finally:
        readline.set_completer(completer)
        with contextlib.suppress(OSError):
            readline.write_history_file(path)


def banner(where: str) -> str:
    """The shell's first line."""
    return (
        f"memscope shell{where}: {', '.join(f'{n} {a}'.strip() for n, (a, _) in COMMANDS.items())}"
    )


def run_tracker(
    names: dict[str, Any],
    source: IO[str],
    out: IO[str],
    *,
    keep_history: bool,
) -> None:
    """The tracker on two streams: prompts and readline on a TTY, plain lines otherwise."""
    from ._repl import stream_reader

    tty = source.isatty() and out.isatty()

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    write(banner("") + "\n")
    tracker = Tracker(stream_reader(source, tty, out), write, names)
    if not tty:
        tracker.prompt = ""
    with history(tty and keep_history):
        tracker.run()
