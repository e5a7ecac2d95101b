"""The demo: a small "service" with a planted leak, and the memscope report that finds it.

It handles fake requests in a loop. Each request stores its rendered response in
a module-level cache keyed by request id, which is never evicted: the classic
unbounded cache. And every 100th request opens an audit log with a fresh
logging.FileHandler on the "audit" logger, never removed: a handler (and an open
file) per batch. memscope takes a snapshot before and after, compares them, and
the diff opens with what it found: the growing dict and who holds it, the handlers
and their logger, the open files, then the ranked table.

Then the same service with memscope.BoundedCache in place of the dict (and one
handler), to show the fix holds the memory flat.

Run: bash scripts/demo.sh   (or: .venv/bin/python examples/leaky_service.py)
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import os
import sys
import tempfile

import memscope

# --- the service ------------------------------------------------------------------

_response_cache: dict[str, bytes] = {}  # the leak: keyed by a fresh id, never evicted
_audit = logging.getLogger("audit")
_audit.propagate = False
_LOGS = tempfile.mkdtemp(prefix="memscope-demo-")


class Session:
    """Per-request state; stays small."""

    def __init__(self, user: str) -> None:
        self.user = user


def handle(
    request_id: int, cache: dict[str, bytes] | memscope.BoundedCache, leaky: bool = True
) -> int:
    """Render a 2 KiB response and cache it under the request id."""
    if leaky and request_id % 100 == 0:
        # the second leak: a handler (and its open file) per batch, never removed
        path = os.path.join(_LOGS, f"audit-{request_id}.log")
        _audit.addHandler(logging.FileHandler(path, delay=False))
    session = Session(f"user-{request_id % 50}")
    body = hashlib.sha256(f"{session.user}:{request_id}".encode()).digest() * 64
    cache[f"req-{request_id}"] = body
    return len(body)


def serve(
    requests: int, start: int, cache: dict[str, bytes] | memscope.BoundedCache, leaky: bool = True
) -> None:
    for i in range(start, start + requests):
        handle(i, cache, leaky)


# --- the diagnosis ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per phase")
    args = parser.parse_args(argv)
    n = args.requests

    print(f"== Leaky version: {n:,} requests, then {n:,} more ==\n")
    serve(n, 0, _response_cache)  # warm up: imports, first allocations
    gc.collect()
    before = memscope.snapshot(label="after warm-up", deep=True)
    serve(n, n, _response_cache)
    gc.collect()
    after = memscope.snapshot(label=f"after {n:,} more requests", deep=True)

    diff = memscope.compare(before, after)
    print(diff.summary(top=6))
    print()
    print("Largest containers now (and who holds them):")
    for row in after["containers"]["top"][:3]:
        print(f"  {row['length']:>8,} items  {row['summary'][:70]}")
        print(f"           held by: {row['where'] or '(no holder found cheaply)'}")
    grew = [c for c in diff["census"] if c.key.startswith("by_type[") and c.key.endswith(".count")]
    grew.sort(key=lambda c: c.delta, reverse=True)
    print("\nTypes whose count grew most:")
    for change in grew[:4]:
        name = change.key[len("by_type[") : -len("].count")]
        print(f"  {change.delta:>+10,.0f}  {name}")

    leak = next(
        (r for r in after["containers"]["top"] if "_response_cache" in (r["where"] or "")), None
    )
    if leak is None:
        print("\nmemscope did not find the planted leak", file=sys.stderr)
        return 1
    print(f"\nFound it: {leak['where']} holds {leak['length']:,} entries and keeps growing.")

    print(f"\n== Fixed version: memscope.BoundedCache(maxsize=1000), {2 * n:,} requests ==\n")
    _response_cache.clear()
    for handler in list(_audit.handlers):
        _audit.removeHandler(handler)
        handler.close()
    cache = memscope.BoundedCache(maxsize=1000, name="responses")
    serve(n, 0, cache, leaky=False)
    gc.collect()
    before = memscope.snapshot(label="bounded, warm", deep=True)
    serve(n, n, cache, leaky=False)
    gc.collect()
    after = memscope.snapshot(label="bounded, later", deep=True)
    bounded = memscope.compare(before, after)
    bytes_growth = bounded.delta("census", "by_type[bytes].count")
    row = next(r for r in after["tracked"]["objects"] if r["name"] == "responses")
    print(f"tracked cache 'responses': len={row['len']:,} (bound {cache.maxsize:,})")
    print(f"bytes objects grew by {bytes_growth:+,.0f} over {n:,} more requests")
    return 0 if row["len"] <= cache.maxsize else 1


if __name__ == "__main__":
    sys.exit(main())
