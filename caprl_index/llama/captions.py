"""The reader's captioner: one per reader, on a private event loop in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from caprl_index.config import Settings
from caprl_index.models import Caption, Figure

T = TypeVar("T")


class CaptionSession:
    """One captioner on a private event loop in a daemon thread, shared by every file a reader loads.

    A thread of its own, not asyncio.run per call: the reader may be called from a thread that already
    runs a loop (Jupyter, `aload_data`), and the captioner's HTTP client must live on one loop.
    """

    def __init__(self, settings: Settings, warn: Callable[[str], None]) -> None:
        self._settings = settings
        self._warn = warn
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="caprl-reader-captions", daemon=True)
        self._thread.start()
        self._captioner: Any = None
        self._opening = asyncio.Lock()

    def submit(self, figures: list[list[Figure]]) -> Future[list[list[Caption]]]:
        return self._run(self._caption_all(figures))

    async def _caption_all(self, figures: list[list[Figure]]) -> list[list[Caption]]:
        captioner = await self._open()
        flat = await asyncio.gather(*(captioner.caption(f) for page in figures for f in page))
        out, i = [], 0
        for page in figures:
            out.append(list(flat[i : i + len(page)]))
            i += len(page)
        return out

    async def _open(self) -> Any:
        async with self._opening:  # batches may arrive together: probe vLLM once, not once per batch
            if self._captioner is None:
                from caprl_index.captioning import open_captioner

                self._captioner = await open_captioner(self._settings, warn=self._warn)
        return self._captioner

    def close(self) -> None:
        if self._captioner is not None:
            self._run(self._captioner.aclose()).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)
