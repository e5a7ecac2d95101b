"""What the subcommands share: a parser whose errors exit 1, and snapshot references."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, NoReturn

from . import CLIError

if TYPE_CHECKING:
    from .._snapshot import Snapshot

BAD_INPUT = 1  # exit code: an argument or an input file is not what is accepted
GONE = 2  # exit code: the target process is gone or not accessible


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one-line CLIErrors with exit code 1."""

    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage and exit 2; 2 means "target gone" here
        raise CLIError(message, BAD_INPUT)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def split_ref(ref: str) -> tuple[str, int | None]:
    """``PATH`` or ``PATH:INDEX`` -> (path, index or None); a path that exists wins."""
    path, sep, tail = ref.rpartition(":")
    if not sep or os.path.exists(ref):
        return ref, None
    try:
        return path, int(tail)
    except ValueError:
        return ref, None  # a colon in a file name that does not exist: "cannot read" says so


def load_ref(name: str, ref: str) -> Snapshot:
    """The snapshot ``ref`` names (a .json file, or a .jsonl file and an index, default -1).

    ``name`` is the argument's name, put in front of every error message.
    """

    path, index = split_ref(ref)
    snaps = load_file(path, name)
    if index is None:
        return snaps[-1]
    n = len(snaps)
    if not -n <= index < n:
        held = "one snapshot" if n == 1 else f"{n} snapshots"
        raise CLIError(
            f"{name}: no index {index} in {path}: it holds {held} "
            f"(indexes 0..{n - 1}, or -{n}..-1 from the end)",
            BAD_INPUT,
        )
    return snaps[index]


def load_file(path: str, name: str) -> list[Snapshot]:
    """Every snapshot of a .jsonl file (or the one of a .json file); one-line errors, exit 1."""
    import memscope

    try:
        if path.endswith(".json"):
            with open(path, "rb") as fh:
                snaps = [memscope.Snapshot.from_json(fh.read())]
        else:
            snaps = memscope.load(path)
    except OSError as exc:
        raise CLIError(f"{name}: cannot read {path}: {exc.strerror or exc}", BAD_INPUT) from exc
    except ValueError as exc:
        raise CLIError(f"{name}: {path}: not a snapshot file: {exc}", BAD_INPUT) from exc
    if not snaps:
        raise CLIError(f"{name}: {path} holds no snapshots", BAD_INPUT)
    return snaps
