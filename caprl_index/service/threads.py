"""The two threads that own what is not thread-safe: the store, and the query encoder.

`StoreThread` is the only thread that touches the `QdrantStore` (Qdrant Edge's handle is not thread-safe and
may be opened once per process). Searches, status, deletes and an ingest job's writes all queue on it; reads
go ahead of queued writes, so a search never waits behind a long run of a job's upserts, but at most
`READS_PER_WRITE` reads pass a waiting write, so a steady stream of searches cannot stall the job either.

`QueryEncoder` runs the query embedding models: one thread per model object (its tokenizer keeps state per
object). Queries that arrive while the threads are busy are shared out and embedded in batches.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar

from caprl_index.errors import StoreError

if TYPE_CHECKING:
    from caprl_index.embedding import Embedder

T = TypeVar("T")
READS_PER_WRITE = 8  # reads served while a write waits, before that write runs
MAX_QUERY_BATCH = 16  # queries embedded in one call
QUERY_CACHE = 1024  # recent query vectors kept (the web page re-runs a query with other filters)

_Work = tuple[Future, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def limit_blas_threads() -> None:
    """One BLAS thread for this process: a query is a small matrix product, and two spinning BLAS threads per
    query made it 5x slower on a loaded 2-core machine (115 ms vs 19 ms). `serve` and the CLI's local search
    both call this, so their vectors (and dense scores) are equal to the last bit. Torch keeps its own."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with sentence-transformers (scikit-learn)
        return
    threadpool_limits(1, user_api="blas")


class StoreThread(Executor):
    """A single thread running store calls: `read()` for the service's reads, `submit()` for writes.

    It is a `concurrent.futures.Executor`, so `pipeline.ingest(store_thread=...)` queues its calls here.
    """

    def __init__(self, name: str = "caprl-store") -> None:
        self._reads: collections.deque[_Work] = collections.deque()
        self._writes: collections.deque[_Work] = collections.deque()
        self._wake = threading.Condition()
        self._closed = False
        self._reads_in_a_row = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a write (or any call whose order with other writes matters: the pipeline's)."""
        return self._put(self._writes, fn, args, kwargs)

    def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a read: it runs before queued writes (within the `READS_PER_WRITE` bound)."""
        return self._put(self._reads, fn, args, kwargs)

    async def run_read(self, fn: Callable[..., T], /, *args: Any) -> T:
        return await asyncio.wrap_future(self.read(fn, *args))

    async def run_write(self, fn: Callable[..., T], /, *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def _put(self, queue: collections.deque[_Work], fn: Callable[..., T], args: tuple, kwargs: dict) -> Future[T]:
        future: Future[T] = Future()
        with self._wake:
            if self._closed:
                raise StoreError("the server is shutting down: the index is closed; retry once it is back")
            queue.append((future, fn, args, kwargs))
            self._wake.notify()
        return future

    def _next(self) -> _Work | None:
        with self._wake:
            while not (self._reads or self._writes or self._closed):
                self._wake.wait()
            # Closing: every read first, then the writes, the store's close last (a read after it would reopen).
            turn = self._reads_in_a_row >= READS_PER_WRITE and not self._closed
            if self._writes and (not self._reads or turn):
                self._reads_in_a_row = 0
                return self._writes.popleft()
            if self._reads:
                self._reads_in_a_row += 1
                return self._reads.popleft()
            return None  # closed and drained

    def _loop(self) -> None:
        while (work := self._next()) is not None:
            future, fn, args, kwargs = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller, who reports it
                future.set_exception(exc)

    def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, final: Callable[[], Any] | None = None
    ) -> None:
        """Stop taking work; queued calls still run (unless `cancel_futures`), then `final` (closing the store:
        nothing can queue behind it and reopen it), then the thread ends."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            if cancel_futures:
                for future, *_ in (*self._reads, *self._writes):
                    future.cancel()
                self._reads.clear()
                self._writes.clear()
            if final is not None:
                self._writes.append((Future(), final, (), {}))
            self._wake.notify()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed


class QueryEncoder:
    """Embeds search queries on threads of their own, each owning one embedder (its tokenizer keeps state),
    in batches, with a small cache of recent queries.

    Several threads with one embedder each use both cores of a small machine; each still embeds its texts
    one call at a time, so a vector does not depend on which thread or batch it came from.
    """

    def __init__(self, embedders: Sequence[Embedder], name: str = "caprl-query") -> None:
        self.embedders = list(embedders)
        self._queue: collections.deque[tuple[str, Future[list[float]]]] = collections.deque()
        self._wake = threading.Condition()
        self._cache: collections.OrderedDict[str, list[float]] = collections.OrderedDict()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"{name}-{i}", daemon=True)
            for i in range(len(self.embedders))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def embedder(self) -> Embedder:
        """The first embedder (they are all the same model)."""
        return self.embedders[0]

    async def encode(self, text: str) -> list[float]:
        """The query's vector (computed on an encoder thread, or from the cache)."""
        return await asyncio.wrap_future(self.submit(text))

    def submit(self, text: str) -> Future[list[float]]:
        future: Future[list[float]] = Future()
        with self._wake:
            if self._closed:
                raise StoreError("the server is shutting down; retry once it is back")
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                future.set_result(cached)
                return future
            self._queue.append((text, future))
            self._wake.notify()
        return future

    def warm_up(self) -> None:
        """Load every model now (each on its own thread), so the first searches do not pay for it."""
        for future in [self.submit(f"warm up {i}") for i in range(len(self.embedders))]:
            future.result()

    def _take(self) -> list[tuple[str, Future[list[float]]]] | None:
        with self._wake:
            while not self._queue and not self._closed:
                self._wake.wait()
            if not self._queue:
                return None
            # A fair share of what waits, so that the other threads get work too.
            share = -(-len(self._queue) // len(self._threads))
            return [self._queue.popleft() for _ in range(min(MAX_QUERY_BATCH, share))]

    def _loop(self, index: int) -> None:
        while (batch := self._take()) is not None:
            texts = list(dict.fromkeys(text for text, _ in batch))  # the same query twice is embedded once
            try:
                vectors = dict(zip(texts, self.embedders[index].embed(texts), strict=True))
            except BaseException as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            with self._wake:
                for text, vector in vectors.items():
                    self._cache[text] = vector
                    while len(self._cache) > QUERY_CACHE:
                        self._cache.popitem(last=False)
            for text, future in batch:
                future.set_result(vectors[text])

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
