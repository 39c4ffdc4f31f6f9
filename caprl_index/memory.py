"""Give freed heap memory back to the operating system.

Native libraries used per page (MuPDF rendering, ONNX Runtime for OCR, torch for embeddings) allocate large
temporary buffers through malloc. glibc keeps freed memory in its arenas, so a process's RSS stays at its
high-water mark: one OCR call leaves a worker ~250 MB larger although nothing is alive. `malloc_trim`
returns those pages; it costs about a millisecond and is called after each page batch and embedding batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # musl has none
    except OSError:
        return None


def trim_heap() -> bool:
    """Release free heap pages to the OS; True when the C library did so (glibc on Linux)."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
