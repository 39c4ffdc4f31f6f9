"""One dedicated thread for objects that must not be shared between threads.

Qdrant Edge's shard handle, an embedding model and its tokenizer, PyMuPDF documents: each is used from one
thread only. LlamaIndex calls readers, vector stores and retrievers from whatever thread or event loop it
runs on, and its default async methods hop onto `asyncio.to_thread`'s pool, so a store reached from there
would be entered by several threads at once. An owner routes every such call through its `OneThread`
instead: calls queue up and run one at a time, always on the same thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class OneThread:
    """Runs functions on one thread of its own, in order (sync callers block, async callers await)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.ident = self._executor.submit(threading.get_ident).result()

    @property
    def current(self) -> bool:
        """True when called on this thread (a call from inside a call runs at once: no self-deadlock)."""
        return threading.get_ident() == self.ident

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.current:
            return fn(*args)
        return self._executor.submit(fn, *args).result()

    async def arun(self, fn: Callable[..., T], *args: Any) -> T:
        if self.current:  # only if a caller runs an event loop on this very thread
            return fn(*args)
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    def check(self, what: str) -> None:
        """Raise when `what` is touched off this thread: a bug in the caller, never a user error."""
        if not self.current:
            raise RuntimeError(f"{what} used from thread {threading.current_thread().name}, not its own thread")

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
