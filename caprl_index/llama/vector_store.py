"""`CapRLVectorStore`: a LlamaIndex vector store over the caprl-index store, embedded (Qdrant Edge) or server.

    store = CapRLVectorStore()                      # the CLI's index: CAPRL_QDRANT_PATH / CAPRL_QDRANT_URL
    index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding())

Points it writes are the CLI's: dense vector from the node's embedding, our BM25 sparse vector of its text,
the payload `store/payload.py` builds. The file registry stays in step with deletes: a file version that
loses points through LlamaIndex loses its record, so the next `caprl-index ingest` indexes it again, and
`status` never vouches for points that are gone. Adding nodes of a newer version of a file drops the older
version, as ingest does. Every store call runs on the store's own thread (`StoreWorker`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from caprl_index.config import Settings
from caprl_index.errors import ConfigError
from caprl_index.llama.filters import NOTHING, FilterSpec, translate
from caprl_index.llama.nodes import node_to_point, point_to_node
from caprl_index.llama.worker import StoreWorker
from caprl_index.search import PREFETCH, retriever_weights, rrf_scores
from caprl_index.store import NewPoint, PointFilter, QdrantStore, StoredPoint
from caprl_index.store.sparse import query_vector

_MODES = {VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SPARSE}


class CapRLVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store on the caprl-index store: `add`, `delete(ref_doc_id)`, `delete_nodes`,
    `get_nodes`, `query` with `MetadataFilters`, `clear`, each with its async twin.

    `settings` (or `Settings(**overrides)`) names the index like the CLI does; `store=` passes an opened
    `QdrantStore` (tests, a server-mode collection). Close it (or use `with`) to build the embedded index's
    search indexes after adding points and to release its folder lock.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    hybrid: bool = Field(default=True, description="DEFAULT-mode queries fuse dense and BM25 as the CLI does.")
    _worker: StoreWorker = PrivateAttr()

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: QdrantStore | None = None,
        hybrid: bool = True,
        **overrides: Any,
    ) -> None:
        super().__init__(hybrid=hybrid)  # type: ignore[call-arg]  # pydantic fields are keyword arguments
        if settings is None:
            settings = store.settings if store is not None else Settings(**overrides)
        self._worker = StoreWorker(settings, store=store)

    @classmethod
    def class_name(cls) -> str:
        return "CapRLVectorStore"

    @property
    def client(self) -> Any:
        return None  # no Qdrant client to hand out: the store is reached through this object's thread

    @property
    def worker(self) -> StoreWorker:
        """The thread that owns the store; `CapRLRetriever(vector_store)` runs its searches there too."""
        return self._worker

    @property
    def settings(self) -> Settings:
        return self._worker.settings

    def as_retriever(self, **kwargs: Any) -> Any:
        """A `CapRLRetriever` over this store (hybrid, page grouping, filters): see its arguments."""
        from caprl_index.llama.retriever import CapRLRetriever

        return CapRLRetriever(self, **kwargs)

    # --- writes -------------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        points = [node_to_point(n) for n in nodes]
        self._worker.run(self._upsert, points)
        return [p.id for p in points]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        points = [node_to_point(n) for n in nodes]
        await self._worker.arun(self._upsert, points)
        return [p.id for p in points]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        self._worker.run(self._delete, PointFilter(doc_ids=(ref_doc_id,)))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._worker.arun(self._delete, PointFilter(doc_ids=(ref_doc_id,)))

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        if node_ids == [] and filters is None:
            return  # nothing named, nothing deleted (an empty list is not "everything")
        self._worker.run(self._delete_matching, translate(filters, node_ids=node_ids))

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        if node_ids == [] and filters is None:
            return
        await self._worker.arun(self._delete_matching, translate(filters, node_ids=node_ids))

    def clear(self) -> None:
        self._worker.run(self._clear)

    async def aclear(self) -> None:
        await self._worker.arun(self._clear)

    # --- reads --------------------------------------------------------------------------------------
    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **kwargs: Any
    ) -> list[BaseNode]:
        return self._worker.run(self._get, translate(filters, node_ids=node_ids), node_ids)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **kwargs: Any
    ) -> list[BaseNode]:
        return await self._worker.arun(self._get, translate(filters, node_ids=node_ids), node_ids)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return self._worker.run(self._query, *_query_args(query))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await self._worker.arun(self._query, *_query_args(query))

    # --- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Build the search indexes after additions (embedded index), close the store, end its thread."""
        self._worker.close()

    def __enter__(self) -> CapRLVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- on the store thread ------------------------------------------------------------------------
    def _upsert(self, points: list[NewPoint]) -> None:
        if not points:
            return
        store = self._worker.store
        store.ensure_collection(len(points[0].dense))
        self._drop_older_versions(points)
        store.upsert(points)
        self._worker.unoptimized += len(points)

    def _drop_older_versions(self, points: list[NewPoint]) -> None:
        """A file holds one version in the index: nodes of a new version replace the old one's points."""
        store = self._worker.store
        versions = {p.payload["file_path"]: p.payload.get("file_sha256") for p in points}
        for path, sha in versions.items():
            if sha and store.count(PointFilter(file_paths=(path,))) > store.count(
                PointFilter(file_paths=(path,), file_sha256=sha)
            ):
                old = [p for p in self._points(PointFilter(file_paths=(path,))) if p.payload.get("file_sha256") != sha]
                self._remove(old)

    def _delete(self, flt: PointFilter) -> None:
        if self._worker.store.exists():
            self._remove(self._points(flt))

    def _delete_matching(self, spec: FilterSpec) -> None:
        flt = spec.resolve(self._worker.store)
        if flt is NOTHING:
            return
        if flt is None:
            raise ConfigError("delete_nodes needs node_ids or filters (to delete everything, call clear())")
        self._delete(flt)  # type: ignore[arg-type]

    def _remove(self, points: list[StoredPoint]) -> None:
        """Delete points, then the records of the file versions they belonged to (the next ingest redoes them),
        then the images nothing refers to any more (the CLI's collection: `evidence.gc`)."""
        from caprl_index.evidence.gc import doomed, remove_unreferenced

        store, images = self._worker.store, self._worker.images
        gone = doomed(points) if images is not None else None
        ids = [p.id for p in points]
        for start in range(0, len(ids), 1024):
            store.engine.delete(PointFilter(ids=tuple(ids[start : start + 1024])))
        versions = {(str(p.payload.get("file_path", "")), p.payload.get("file_sha256")) for p in points}
        for path, sha in versions:
            record = store.get_record(path) if path else None
            if record is not None and record.file_sha256 == sha:
                store.engine.delete_record(path)
        if gone is not None and images is not None:
            remove_unreferenced(gone, store, images)

    def _clear(self) -> None:
        store = self._worker.store
        if store.exists():
            self._remove(self._points(None))
        for path in store.records():
            store.engine.delete_record(path)

    def _points(self, flt: PointFilter | None) -> list[StoredPoint]:
        return self._worker.store.points(flt or PointFilter())

    def _get(self, spec: FilterSpec, node_ids: list[str] | None) -> list[BaseNode]:
        flt = spec.resolve(self._worker.store)
        if flt is NOTHING:
            return []
        found = self._points(flt)  # type: ignore[arg-type]
        if node_ids is not None:  # in the order asked for
            rank = {nid: i for i, nid in enumerate(node_ids)}
            found.sort(key=lambda p: rank.get(p.id, len(rank)))
        images = self._worker.images
        return [point_to_node(p, images) for p in found]

    def _query(
        self, spec: FilterSpec, dense: list[float], text: str, k: int, mode: VectorStoreQueryMode
    ) -> VectorStoreQueryResult:
        store = self._worker.store
        flt = spec.resolve(store)
        if flt is NOTHING or k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        sparse = query_vector(text)
        depth = max(PREFETCH, 4 * k)
        if mode == VectorStoreQueryMode.SPARSE:
            ranked = store.query_each(dense, sparse, limit=k, flt=flt)  # type: ignore[arg-type]
            points = ranked[1] if len(ranked) > 1 else []
        else:
            hybrid = mode == VectorStoreQueryMode.HYBRID or self.hybrid
            # The CLI's fusion (search.Searcher: weighted RRF, equal scores in id order). Every chunk comes back
            # (a store answers nodes); CapRLRetriever shows a long figure once, as `search` does.
            ranked = store.query_each(dense, sparse, limit=depth, flt=flt, hybrid=hybrid)  # type: ignore[arg-type]
            scores = rrf_scores([[p.id for p in pts] for pts in ranked], retriever_weights(len(ranked)))
            first = {p.id: p for pts in reversed(ranked) for p in reversed(pts)}
            order = sorted(scores, key=lambda i: (-scores[i], i))[:k]
            points = [StoredPoint(i, first[i].payload, scores[i]) for i in order]
        images = self._worker.images
        return VectorStoreQueryResult(
            nodes=[point_to_node(p, images) for p in points],
            similarities=[p.score for p in points],
            ids=[p.id for p in points],
        )


def _query_args(query: VectorStoreQuery) -> tuple[FilterSpec, list[float], str, int, VectorStoreQueryMode]:
    """Validate a LlamaIndex query here, in the caller's thread: a bad query fails before reaching the store."""
    if query.mode not in _MODES:
        raise ConfigError(f"CapRLVectorStore answers default, hybrid and sparse queries, not {query.mode.value!r}")
    if query.query_embedding is None:
        raise ConfigError("the query has no embedding: give the index embed_model=CapRLEmbedding()")
    hybrid_k = query.hybrid_top_k if query.mode == VectorStoreQueryMode.HYBRID else None
    k = hybrid_k or query.similarity_top_k
    spec = translate(query.filters, doc_ids=query.doc_ids, node_ids=query.node_ids)
    return spec, list(query.query_embedding), query.query_str or "", k, query.mode
