"""Each leak shape, built for real in a fresh interpreter: the culprit is in the first five
lines of ``str(compare(a, b))`` (the header and the first findings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHAPES = Path(__file__).with_name("shapes.py")

# shape -> words that must all be on one of the first five lines
CULPRITS = {
    "sockets": ["open files +300, all sockets", "socket.socket +300"],
    "files": ["open files +300, all files"],
    "lru": ["functools.lru_cache of __main__.Quote.price", "keeps +300 Quote objects alive"],
    "handlers": ["+300 logging.FileHandler objects", "logger 'audit' handlers", "open file"],
    "per_user": ["__main__.service._rendered", "a dict on ProfileService"],
    "registry": ["__main__._registry['acme']['exports']", "+300 Report objects"],
    "tasks": ["+300 pending tasks running __main__._notify()"],
    "threads": ["+20 threads running poller-N (+20)"],
    "native": ["but Python objects", "native memory", "+100 ssl.SSLContext"],
}


def run_shape(name: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(SHAPES), name],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout.splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CULPRITS))
def test_the_culprit_is_in_the_first_five_lines(name: str) -> None:
    lines = run_shape(name)
    head = lines[:5]
    assert head[0].startswith("memscope diff 'before' -> 'after'")
    assert any(all(word in line for word in CULPRITS[name]) for line in head), "\n".join(lines)
    # the findings come first, then the table: its rows never repeat the memory five times
    table = lines[lines.index("  changes, strongest evidence first:") :]
    assert sum(1 for line in table if "memory:" in line) <= 1
    assert not any("process: vms_bytes" in line or "cgroup.usage_bytes" in line for line in table)


@pytest.mark.slow
def test_a_starlette_service_under_uvicorn_driven_over_http() -> None:
    out = subprocess.run(
        [sys.executable, str(SHAPES.with_name("service.py")), "600"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    head = out.stdout.splitlines()[:5]
    text = "\n".join(head)
    assert "+600 logging.FileHandler objects in logger 'audit' handlers" in text, out.stdout
    assert "each holding an open file" in text
    assert "__main__.service._rendered (a dict on ProfileService)" in text, out.stdout
    # the handlers' files, streams and encoders are parts of the handlers: not told apart
    assert "_io.BufferedWriter objects" not in text
