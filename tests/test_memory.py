"""trim_heap hands freed malloc memory back to the OS (what keeps workers and the embedder flat)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import psutil
import pytest

from caprl_index.memory import trim_heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_freed_heap_is_returned() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    proc = psutil.Process()
    blocks = [libc.malloc(4096) for _ in range(50_000)]  # 200 MB of small blocks: heap, not mmap
    for b in blocks:
        ctypes.memset(b, 1, 4096)
    high = proc.memory_info().rss
    for b in blocks:
        libc.free(b)
    assert trim_heap() is True
    low = proc.memory_info().rss
    assert high - low > 150 * 2**20, (high >> 20, low >> 20)
