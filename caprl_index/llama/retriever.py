"""`CapRLRetriever`: the CLI's search (`caprl-index search`) as a LlamaIndex retriever, sync and async.

    retriever = CapRLRetriever(similarity_top_k=5)                      # the CLI's index, read-only
    retriever = CapRLVectorStore().as_retriever(group_by_page=True)     # sharing a vector store's index
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)

Same ranking as the CLI, by construction: it calls `search.Searcher.search_filtered`, hybrid dense + BM25
by default (`hybrid=False` is `--dense-only`), `group_by_page=True` is `--group-by page` (with the cross-kind
bonus), `file_glob` is `--file`, and LlamaIndex `MetadataFilters` cover `--kind`, `--pages` and more (see
`llama/filters.py`). Nodes are the stored ones: ids are point ids, metadata the payload's values; figures
with a kept crop come back as `FigureNode`s a multimodal LLM is sent as images.
"""

from __future__ import annotations

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from caprl_index.config import Settings
from caprl_index.embedding import Embedder
from caprl_index.llama.filters import NOTHING, merge, translate
from caprl_index.llama.nodes import point_to_node
from caprl_index.llama.vector_store import CapRLVectorStore
from caprl_index.llama.worker import StoreWorker
from caprl_index.search import SearchFilters


class CapRLRetriever(BaseRetriever):
    """Top-k chunks (or pages) of the caprl-index store for a query, ranked exactly as `caprl-index search`.

    Args:
        vector_store: share this store's index and thread; default: open the index `settings` name, read-only.
        settings: the CLI's settings (CAPRL_*, caprl-index.toml) when no vector store is given.
        similarity_top_k: results (`-k`).
        hybrid: fuse BM25 with dense retrieval (False = `--dense-only`).
        group_by_page: one result per page, its best chunk, pages ranked as `--group-by page` ranks them.
        filters: LlamaIndex metadata filters on kind, figure_type, page, file_path, file_name, doc_id.
        file_glob: only files whose path or name matches (`--file GLOB`).
        embedder: a caprl-index embedder for queries (default: the index's model, loaded on first use).
    """

    def __init__(
        self,
        vector_store: CapRLVectorStore | None = None,
        *,
        settings: Settings | None = None,
        similarity_top_k: int = 10,
        hybrid: bool = True,
        group_by_page: bool = False,
        filters: MetadataFilters | None = None,
        file_glob: str | None = None,
        embedder: Embedder | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        if similarity_top_k < 1:
            raise ValueError("similarity_top_k must be at least 1")
        self.similarity_top_k = similarity_top_k
        self.hybrid = hybrid
        self.group_by_page = group_by_page
        self.file_glob = file_glob
        self._spec = translate(filters)  # an unsupported filter fails here, not at the first query
        self._owns_worker = vector_store is None
        if vector_store is not None:
            self._worker = vector_store.worker
        else:
            self._worker = StoreWorker(settings or Settings(), embedder=embedder, create=False)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._worker.run(self._search, query_bundle.query_str)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await self._worker.arun(self._search, query_bundle.query_str)

    def close(self) -> None:
        """Close the index when this retriever opened it (not when it shares a vector store's)."""
        if self._owns_worker:
            self._worker.close()

    def __enter__(self) -> CapRLRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _search(self, query: str) -> list[NodeWithScore]:
        """On the store thread: filter, search as the CLI does, read the winners' stored nodes."""
        if not query.strip():
            return []
        searcher, store = self._worker.searcher(), self._worker.store
        store.require()
        glob = searcher.point_filter(SearchFilters(file_glob=self.file_glob)) if self.file_glob else None
        flt = merge(self._spec.resolve(store), glob)
        if flt is NOTHING:
            return []
        hits = searcher.search_filtered(
            query,
            k=self.similarity_top_k,
            flt=flt,  # type: ignore[arg-type]
            group_by_page=self.group_by_page,
            hybrid=self.hybrid,
        )
        points = {p.id: p for p in store.retrieve([h.id for h in hits])}
        images = self._worker.images
        return [NodeWithScore(node=point_to_node(points[h.id], images), score=h.score) for h in hits if h.id in points]
