"""`ThreadGuard`: an engine wrapper that notices when two threads use it at once, for stress tests.

Qdrant Edge's shard handle is not thread-safe; LlamaIndex objects must route every store call through one
thread. The guard wraps a real engine, records the thread of every call, and counts calls that began while
another thread was still inside (each call lingers a moment, so an overlap cannot hide between two calls).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class ThreadGuard:
    """Wraps an `Engine`; `threads` holds every caller's thread id, `overlaps` the concurrent entries."""

    def __init__(self, engine: Any, *, linger_s: float = 0.001) -> None:
        self._engine = engine
        self._linger_s = linger_s
        self._inside = threading.Lock()
        self._count = threading.Lock()
        self.threads: set[int] = set()
        self.overlaps = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        return self._guarded(attr) if callable(attr) else attr

    def _guarded(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            entered = self._inside.acquire(blocking=False)
            with self._count:
                self.calls += 1
                self.threads.add(threading.get_ident())
                self.overlaps += not entered
            try:
                time.sleep(self._linger_s)
                return method(*args, **kwargs)
            finally:
                if entered:
                    self._inside.release()

        return call
