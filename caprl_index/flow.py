"""How much parsed data the pipeline holds at once: a budget in bytes, not only a count of batches.

A batch's size is known only once it is parsed (its page renders, thumbnails and figure crops: ~1.5 MB for
8 pages of a typical report, tens of MB for 8 pages of high-resolution scans or photos). So a batch is
admitted on an estimate (the mean of the batches seen so far), settles to its real size when it arrives,
and releases it when its chunks are stored. A batch is admitted when the estimate fits under the limit,
or when nothing is held at all (one batch larger than the limit still runs, alone), so the pipeline never
stalls; what is held stays within the limit plus how far the batches still parsing turn out larger than
the estimate. A size known before admission (`hold(size)`) is admitted on that size.

`Slot` is a semaphore slot that can be given back before the work that took it ends: a file holds one
while its pages are parsed, not while its last figures wait for the caption server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable


class ByteBudget:
    """Bytes held by the batches in flight, at most `limit` (see the module's docstring); one event loop."""

    def __init__(self, limit: int, first_estimate: int) -> None:
        self.limit = limit
        self.estimate = first_estimate
        self.used = 0
        self.peak = 0  # the most bytes held at once (settled sizes and estimates)
        self._settled = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int | None = None) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        """Wait for room, hold `size` (default: the estimate); the caller awaits `settle(size)` once the
        batch's size is known, unless it was given."""
        held = 0
        async with self._changed:
            want = self.estimate if size is None else size
            await self._changed.wait_for(lambda: self.used == 0 or self.used + want <= self.limit)
            held = want
            self._add(held)

        async def settle(size: int) -> None:
            nonlocal held
            async with self._changed:
                self._add(size - held)
                held = size
                self._settled += 1
                self.estimate = max(1, self.estimate + (size - self.estimate) // self._settled)  # running mean
                self._changed.notify_all()

        try:
            yield settle
        finally:
            async with self._changed:
                self._add(-held)
                self._changed.notify_all()

    def _add(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)


class Slot:
    """One slot of `semaphore`, taken on entry and given back by `release()` or on exit, whichever is first."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = False

    async def __aenter__(self) -> Slot:
        await self._semaphore.acquire()
        self._held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()
