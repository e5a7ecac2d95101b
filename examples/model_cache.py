"""A model cache that would grow without bound, bounded by BoundedCache(max_bytes=...).

Run: python examples/model_cache.py
A service loads a "model" per tenant on demand. Kept in a plain dict, every tenant
ever seen stays in memory; kept in a BoundedCache with max_bytes, the cache holds
at most 8 MiB and the snapshot's ``tracked`` section shows its size and evictions.
"""

from __future__ import annotations

import random

import memscope
from memscope.guard import BoundedCache

MODEL_BYTES = 1 << 20  # each "model" is 1 MiB of weights
TENANTS = 40


def load_model(tenant: str) -> dict[str, bytes]:
    """Stands in for reading weights from disk: 1 MiB of bytes per tenant."""
    return {"weights": bytes(MODEL_BYTES), "name": tenant.encode()}


def main() -> int:
    """Serve requests for many tenants with and without a bound, and show the difference."""
    unbounded: dict[str, dict[str, bytes]] = {}
    for i in range(TENANTS):
        tenant = f"tenant-{i}"
        unbounded.setdefault(tenant, load_model(tenant))
    unbounded_mib = sum(len(m["weights"]) for m in unbounded.values()) / (1 << 20)
    print(f"plain dict after {TENANTS} tenants: {len(unbounded)} models, {unbounded_mib:.0f} MiB")
    unbounded.clear()

    # the default getsizeof looks one level into the dict, so the weights are counted
    models: BoundedCache[str, dict[str, bytes]] = BoundedCache(
        maxsize=1000, max_bytes=8 << 20, name="models"
    )
    rng = random.Random(0)
    for _request in range(300):
        # most traffic comes from a few busy tenants, the rest from a long tail
        i = rng.randrange(5) if rng.random() < 0.8 else rng.randrange(TENANTS)
        tenant = f"tenant-{i}"
        models.get_or_set(tenant, lambda t=tenant: load_model(t))  # type: ignore[misc]

    stats = models.stats()
    assert models.currbytes is not None and models.max_bytes is not None
    assert models.currbytes <= models.max_bytes
    print(
        f"BoundedCache(max_bytes=8 MiB): {stats.entries} models, "
        f"{models.currbytes / (1 << 20):.1f} MiB, hits={stats.hits} misses={stats.misses} "
        f"evictions_bytes={stats.evictions_bytes}"
    )

    snap = memscope.snapshot(collectors=["tracked"])
    row = next(r for r in snap["tracked"]["objects"] if r["name"] == "models")
    print("snapshot tracked section:")
    for line in snap["tracked"].summary_lines(top=5):
        print("  " + line)
    assert row["size_bytes"] == models.currbytes
    assert row["stats"]["evictions_bytes"] == stats.evictions_bytes > 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
