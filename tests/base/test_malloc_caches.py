"""glibc's caches of freed small chunks: fastbins turned off and on, the thread cache filled."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest

from memscope._base.libc import fill_thread_cache, libc_info, mallinfo2, set_fastbins

pytestmark = pytest.mark.skipif(
    not libc_info().has_mallinfo2, reason="fastbins and mallinfo2() are glibc's"
)


@pytest.fixture
def libc() -> Iterator[ctypes.CDLL]:
    handle = ctypes.CDLL(None)
    handle.malloc.restype = ctypes.c_void_p
    handle.malloc.argtypes = [ctypes.c_size_t]
    handle.free.argtypes = [ctypes.c_void_p]
    yield handle
    set_fastbins(True)


def _waiting() -> int:
    info = mallinfo2()
    assert info is not None
    return info["smblks"]


def _free_small_chunks(libc: ctypes.CDLL) -> int:
    """Free 200 chunks of 24 bytes (past the thread cache's 7): how many more now wait.

    (Counted before and after: other threads' arenas keep what already waited there.)
    """
    before = _waiting()
    chunks = [libc.malloc(24) for _ in range(200)]
    for chunk in chunks:
        libc.free(chunk)
    return _waiting() - before


def test_off_the_freed_chunks_go_to_the_free_lists_and_on_brings_them_back(
    libc: ctypes.CDLL,
) -> None:
    assert set_fastbins(True)
    assert _free_small_chunks(libc) > 100  # the thread cache takes 7, fastbins the rest
    assert set_fastbins(False)
    # no freed chunk waits in a fastbin now
    assert _free_small_chunks(libc) == 0
    assert set_fastbins(True)
    assert _free_small_chunks(libc) > 100


def test_a_tuned_bound_is_what_on_restores(
    libc: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a bound under the chunks' size: set back to it, they do not wait in a fastbin
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mxfast=16")
    assert set_fastbins(True)
    assert _free_small_chunks(libc) == 0
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert set_fastbins(True)
    assert _free_small_chunks(libc) > 100


def _in_use() -> int:
    info = mallinfo2()
    assert info is not None
    return info["uordblks"]


def test_a_filled_thread_cache_counts_the_same_after_any_churn(libc: ctypes.CDLL) -> None:
    # freeing n chunks puts min(n, 7) in the thread cache, counted in use: the count
    # follows the churn, not what is live; after a fill it is the same every time
    assert set_fastbins(False)  # (as during a check)
    plain, filled = set(), set()
    for n in (1, 3, 5, 2, 7, 4, 6) * 3:
        chunks = [libc.malloc(24) for _ in range(n)]
        for chunk in chunks:
            libc.free(chunk)
        plain.add(_in_use())
        assert fill_thread_cache()
        filled.add(_in_use())
    assert len(plain) > 1
    # (in a long suite's process one of 21 fills read 64 B off the rest once: kept to
    # at most two values, much closer together than the churn's)
    assert len(filled) <= 2
    assert max(filled) - min(filled) < max(plain) - min(plain)
