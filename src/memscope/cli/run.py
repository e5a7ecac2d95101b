"""``memscope run [options] -- script.py ARGS | -m module ARGS``: run a Python program in this
interpreter under memscope (a Monitor, a deep snapshot at start and at exit, the compare),
keeping its argv and its exit code."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any

from . import CLIError
from ._common import BAD_INPUT, Parser, positive_int


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memscope run``."""
    p = Parser(prog="memscope run", description=__doc__)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between snapshots (5)")
    p.add_argument(
        "--deep-every", type=int, default=0, help="make every Nth snapshot deep (0: none)"
    )
    p.add_argument("--record", metavar="FILE", help="append every snapshot to FILE (.jsonl)")
    p.add_argument(
        "--trace",
        type=positive_int,
        metavar="FRAMES",
        help="trace allocations (tracemalloc) keeping FRAMES frames each",
    )
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="alert when METRIC crosses VALUE (rss_bytes=512MiB, rss_bytes=80%%, tasks=1000, ...)",
    )
    p.add_argument("--top", type=positive_int, default=10, help="changes shown at exit (10)")
    p.add_argument("program", nargs=argparse.REMAINDER, help="-- script.py ARGS or -m module ARGS")
    return p


def _thresholds(items: list[str]) -> dict[str, str | float]:
    out: dict[str, str | float] = {}
    for item in items:
        metric, sep, value = item.partition("=")
        if not sep or not metric or not value:
            raise CLIError(f"--threshold takes METRIC=VALUE, got {item!r}", BAD_INPUT)
        try:
            out[metric] = float(value)
        except ValueError:
            out[metric] = value  # "512MiB", "80%": the Monitor parses and checks it
    return out


def _program(words: list[str]) -> tuple[str, str, list[str]]:
    """('path', script, argv) or ('module', name, argv) from the words after ``--``."""
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise CLIError("give the program: -- script.py ARGS or -m module ARGS", BAD_INPUT)
    if words[0] == "-m":
        if len(words) < 2:
            raise CLIError("-m takes a module name", BAD_INPUT)
        return "module", words[1], words[2:]
    if not os.path.isfile(words[0]):
        raise CLIError(f"script: no such file {words[0]!r}", BAD_INPUT)
    return "path", words[0], words[1:]


def _load(kind: str, target: str, args: list[str]) -> tuple[types.CodeType, types.ModuleType]:
    """The program's code and a fresh ``__main__`` module for it; sys.argv and sys.path set."""
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    if kind == "path":
        path = os.path.abspath(target)
        with open(path, "rb") as fh:
            source = fh.read()
        code = compile(source, path, "exec")
        main.__file__ = path
        sys.argv = [target, *args]
        sys.path[0] = os.path.dirname(path)
        return code, main
    sys.path[0] = os.getcwd()
    try:
        spec = importlib.util.find_spec(target)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(target + ".__main__")
    except (ImportError, ValueError) as exc:
        raise CLIError(f"-m {target}: {exc}", BAD_INPUT) from exc
    if spec is None or spec.loader is None or not hasattr(spec.loader, "get_code"):
        raise CLIError(f"-m {target}: no module named {target!r}", BAD_INPUT)
    module_code = spec.loader.get_code(spec.name)
    if module_code is None:
        raise CLIError(f"-m {target}: no code to run", BAD_INPUT)
    main.__file__ = spec.origin
    main.__spec__ = spec
    main.__package__ = spec.parent
    main.__loader__ = spec.loader
    sys.argv = [spec.origin or target, *args]
    return module_code, main


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the program, so the record and report happen


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the program's exit code."""
    import memscope

    ns = build_parser().parse_args(argv)
    thresholds = _thresholds(ns.threshold)
    kind, target, args = _program(list(ns.program))
    if not ns.interval > 0:
        raise CLIError(f"--interval must be > 0 seconds, got {ns.interval:g}", BAD_INPUT)
    if ns.deep_every < 0:
        raise CLIError(f"--deep-every must be >= 0, got {ns.deep_every}", BAD_INPUT)
    try:
        monitor = memscope.Monitor(
            interval=ns.interval,
            record=ns.record,
            deep_every=ns.deep_every,
            label="run",
            thresholds=thresholds or None,
        )
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--threshold: {exc}", BAD_INPUT) from exc
    saved_argv, saved_path0 = list(sys.argv), sys.path[0]
    code_obj, module = _load(kind, target, args)
    if ns.trace:
        memscope.start_tracing(ns.trace)
    previous_main = sys.modules.get("__main__")
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    memscope.snapshot(label="warm-up")  # memscope's own first imports stay out of the compare
    start = memscope.snapshot(label="run start", deep=True)
    _save(ns.record, start)
    code = 0
    monitor.start()
    sys.modules["__main__"] = module
    try:
        exec(code_obj, module.__dict__)
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        # the program's globals are still alive here: the end snapshot sees what it kept
        monitor.stop()
        end = memscope.snapshot(label="run end", deep=True)
        _save(ns.record, end)
        _report(monitor, start, end, ns.top, ns.record)
        if previous_main is not None:
            sys.modules["__main__"] = previous_main
        signal.signal(signal.SIGTERM, previous_term)
        sys.argv[:] = saved_argv
        sys.path[0] = saved_path0
    return code


def _save(record: str | None, snap: Any) -> None:
    if record is None:
        return
    import memscope

    try:
        memscope.save(snap, record)
    except OSError as exc:
        print(f"memscope run: --record: cannot write {record}: {exc}", file=sys.stderr)


def _report(monitor: Any, start: Any, end: Any, top: int, record: str | None) -> None:
    """The compare of the start and end snapshots, the trends and alerts: on stderr."""
    import memscope

    out = sys.stderr
    print("\n=== memscope run: what changed from the start to the exit ===", file=out)
    print(memscope.compare(start, end).summary(top=top), file=out)
    trends = monitor.trends(top=5) if len(monitor) >= 3 else []
    for trend in trends:
        print(f"trend: {trend}", file=out)
    for alert in list(monitor.alerts):
        print(f"alert: {alert}", file=out)
    if record:
        print(f"(recorded in {record}: memscope plot {record} -o memory.png)", file=out)
    out.flush()
