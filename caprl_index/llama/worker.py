"""The index as LlamaIndex objects share it: one `QdrantStore` (and the query model) on one thread.

An embedded index (Qdrant Edge) can be opened once per folder per process, so `CapRLVectorStore` and every
`CapRLRetriever` made from it share one `StoreWorker`; a retriever made from settings alone opens its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from caprl_index.config import Settings
from caprl_index.llama.thread import OneThread
from caprl_index.store import QdrantStore

if TYPE_CHECKING:
    from caprl_index.embedding import Embedder
    from caprl_index.evidence import ImageStore
    from caprl_index.search import Searcher

T = TypeVar("T")


class StoreWorker:
    """Owns a QdrantStore and runs every call on it on one dedicated thread (`run`, `arun`).

    The store, the searcher and its model are created lazily on that thread and only ever used there;
    `store` and `searcher()` refuse to be touched from anywhere else.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: QdrantStore | None = None,
        embedder: Embedder | None = None,
        create: bool = True,
    ) -> None:
        self.settings = settings
        self._thread = OneThread("caprl-llama-store")
        self._store = store
        self._embedder = embedder
        self._create = create
        self._searcher: Searcher | None = None
        self._images: ImageStore | None = None
        self.unoptimized = 0  # points written since the indexes were last built
        self.closed = False

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        self._require_open()
        return self._thread.run(fn, *args)

    async def arun(self, fn: Callable[..., T], *args: Any) -> T:
        self._require_open()
        return await self._thread.arun(fn, *args)

    # --- used on the worker thread only ----------------------------------------------------------
    @property
    def store(self) -> QdrantStore:
        self._thread.check("the caprl-index store")
        if self._store is None:
            self._store = QdrantStore(self.settings, create=self._create)
        return self._store

    def searcher(self) -> Searcher:
        """The CLI's searcher over this store (its query model loads on first use, on this thread)."""
        self._thread.check("the caprl-index searcher")
        if self._searcher is None:
            from caprl_index.search import Searcher

            self._searcher = Searcher(self.settings, embedder=self._embedder, store=self.store)
        return self._searcher

    @property
    def images(self) -> ImageStore | None:
        """The image store behind `image_uri` (None when images are not kept)."""
        if self._images is None:
            from caprl_index.evidence import open_image_store

            self._images = open_image_store(self.settings)
        return self._images

    # --- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Build the indexes if points were added (embedded index), close the store, end the thread."""
        if self.closed:
            return
        self._thread.run(self._close_store)
        self.closed = True
        self._thread.shutdown()

    def _close_store(self) -> None:
        if self._store is None:
            return
        try:
            if self.unoptimized and self._store.exists():
                self._store.optimize()
        finally:
            self._store.close()

    def _require_open(self) -> None:
        if self.closed:
            from caprl_index.errors import StoreError

            raise StoreError("this caprl-index vector store or retriever was closed; create a new one to use it")
