"""The server engine: qdrant-client against a Qdrant server or cluster (`CAPRL_QDRANT_URL`).

The collections have the layout `store/qdrant.py` always gave them: named vectors `text-dense` (cosine, on
disk) and `bm25` (sparse, IDF), HNSW m=16 / ef_construct=128, keyword/integer/full-text payload indexes, and
`<collection>_files` with one point per file record (a 1-d placeholder vector). Writes wait for the server's
acknowledgement (`wait=True`): the server has them in its WAL when the call returns.

Only transient transport failures are retried (`server_transport.is_transient`); a 4xx or a bad value fails
the same way every time, so it is raised at once. qdrant-client's in-process modes (`:memory:`, `path=`) run
the same code for tests; they warn on payload indexes and have no use for them, so none are made there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from caprl_index.errors import StoreError
from caprl_index.store.engine import (
    DENSE,
    INTEGER_INDEXES,
    KEYWORD_INDEXES,
    RECORDS_SUFFIX,
    SPARSE,
    TEXT_INDEX,
    NewPoint,
    PointFilter,
    Sparse,
    StoredPoint,
    fused_order,
    record_id,
)
from caprl_index.store.server_transport import RETRY_DELAYS, connect, is_transient, retry

__all__ = ["ServerEngine", "connect", "is_transient"]
T = TypeVar("T")
UPSERT_BATCH = 256


class ServerEngine:
    """`Engine` on a `QdrantClient`: `collection` and `<collection>_files` on a server or cluster."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        shards: int | None = None,
        replication_factor: int | None = None,
        describe: str | None = None,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.client = client
        self.collection = collection
        self.records_collection = collection + RECORDS_SUFFIX
        self.shards = shards
        self.replication_factor = replication_factor
        self.retry_delays = tuple(retry_delays)
        self._known: set[str] = set()
        opts = client.init_options
        self._in_process = opts.get("location") == ":memory:" or opts.get("path") is not None
        self._describe = describe or str(opts.get("url") or opts.get("path") or opts.get("location") or "Qdrant")

    # --- collections ------------------------------------------------------------------------
    def describe(self) -> str:
        return self._describe

    def exists(self) -> bool:
        return self._has(self.collection)

    def _has(self, name: str) -> bool:
        # A collection seen once is taken to stay: saves a round trip per query and write.
        if name not in self._known and self._retry(lambda: self.client.collection_exists(name)):
            self._known.add(name)
        return name in self._known

    def create(self, dim: int) -> None:
        if not self.exists():
            self._created_elsewhere_ok(lambda: self._create_points(dim))
            self._index_payload()  # apart from the creation: a retried or lost creation race still indexes
        elif self.dense_size() != dim:
            raise StoreError(
                f"collection {self.collection!r} in {self.describe()} holds {self.dense_size()}-d vectors (or "
                f"none named {DENSE!r}) but the embedding model gives {dim}-d. Use a new --collection."
            )
        self.ensure_records()

    def ensure_records(self) -> None:
        if not self._has(self.records_collection):
            self._created_elsewhere_ok(self._create_records)

    def dense_size(self) -> int | None:
        if not self.exists():
            return None
        vectors = self._retry(lambda: self.client.get_collection(self.collection)).config.params.vectors
        if not isinstance(vectors, dict) or DENSE not in vectors:
            return None
        return int(vectors[DENSE].size)

    def _create_points(self, dim: int) -> None:
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE, on_disk=True)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=self.shards,
            replication_factor=self.replication_factor,
            hnsw_config=models.HnswConfigDiff(m=16, ef_construct=128),
        )

    def _index_payload(self) -> None:
        """The payload indexes; the server accepts an index that exists already, so this may run twice."""
        if self._in_process:
            return
        text = models.TextIndexParams(
            type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True
        )
        schemas: dict[str, Any] = {key: models.PayloadSchemaType.KEYWORD for key in KEYWORD_INDEXES}
        schemas.update({key: models.PayloadSchemaType.INTEGER for key in INTEGER_INDEXES})
        schemas[TEXT_INDEX] = text
        for key, schema in schemas.items():
            self._retry(lambda k=key, s=schema: self.client.create_payload_index(self.collection, k, s))  # type: ignore[misc]

    def _create_records(self) -> None:
        self.client.create_collection(
            self.records_collection,
            vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT),
            shard_number=self.shards,
            replication_factor=self.replication_factor,
        )

    def _created_elsewhere_ok(self, create: Callable[[], None]) -> None:
        """Several ingest machines may race to create a collection: losing the race is fine."""
        try:
            self._retry(create)
        except StoreError as exc:
            if "already exists" not in str(exc.__cause__):
                raise

    # --- points -----------------------------------------------------------------------------
    def upsert(self, points: Sequence[NewPoint]) -> None:
        structs = [_struct(p) for p in points]
        for start in range(0, len(structs), UPSERT_BATCH):
            batch = structs[start : start + UPSERT_BATCH]
            self._retry(lambda b=batch: self.client.upsert(self.collection, b, wait=True))  # type: ignore[misc]

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[StoredPoint]:
        if not ids or not self.exists():
            return []
        vectors = [DENSE, SPARSE] if with_vectors else False
        found = self._retry(
            lambda: self.client.retrieve(self.collection, list(ids), with_payload=True, with_vectors=vectors)
        )
        return [_stored(r, with_vectors) for r in found]

    def delete(self, flt: PointFilter) -> None:
        if flt.empty:
            raise StoreError("refusing to delete with an empty filter: it would delete every point")
        if self.exists():
            selector = models.FilterSelector(filter=_filter(flt) or models.Filter())
            self._retry(lambda: self.client.delete(self.collection, selector, wait=True))

    def count(self, flt: PointFilter | None = None) -> int:
        if not self.exists():
            return 0
        f = _filter(flt)
        return int(self._retry(lambda: self.client.count(self.collection, count_filter=f, exact=True)).count)

    def scroll(
        self,
        flt: PointFilter | None = None,
        *,
        limit: int = 1024,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[StoredPoint], str | None]:
        if not self.exists():
            return [], None
        vectors = [DENSE, SPARSE] if with_vectors else False
        found, next_id = self._retry(
            lambda: self.client.scroll(
                self.collection,
                scroll_filter=_filter(flt),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=vectors,
            )
        )
        return [_stored(r, with_vectors) for r in found], None if next_id is None else str(next_id)

    # --- queries ----------------------------------------------------------------------------
    def query(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None, depth: int, rrf_k: int
    ) -> list[StoredPoint]:
        if not self.exists():
            return []
        f = _filter(flt)
        if not sparse or not sparse[0]:
            return self._query(query=dense, using=DENSE, limit=limit, query_filter=f, with_payload=True)
        prefetch = [
            models.Prefetch(query=dense, using=DENSE, limit=depth, filter=f),
            models.Prefetch(query=_sparse(sparse), using=SPARSE, limit=depth, filter=f),
        ]
        fusion = models.RrfQuery(rrf=models.Rrf(k=rrf_k))
        # All fused candidates without payload, ties cut in id order (see engine.fused_order), then payloads.
        fused = self._query(prefetch=prefetch, query=fusion, limit=2 * depth, query_filter=f, with_payload=False)
        ranked = fused_order(fused, limit)
        by_id = {p.id: p for p in self.retrieve([p.id for p in ranked])}
        return [StoredPoint(p.id, by_id[p.id].payload, p.score) for p in ranked if p.id in by_id]

    def query_each(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None
    ) -> list[list[StoredPoint]]:
        if not self.exists():
            return []
        f = _filter(flt)
        requests = [models.QueryRequest(query=dense, using=DENSE, limit=limit, filter=f, with_payload=True)]
        if sparse and sparse[0]:
            requests.append(
                models.QueryRequest(query=_sparse(sparse), using=SPARSE, limit=limit, filter=f, with_payload=True)
            )
        results = self._retry(lambda: self.client.query_batch_points(self.collection, requests=requests))
        return [fused_order([_stored(p, False) for p in r.points], limit) for r in results]

    def _query(self, **kwargs: Any) -> list[StoredPoint]:
        res = self._retry(lambda: self.client.query_points(self.collection, **kwargs))
        return [_stored(p, False) for p in res.points]

    # --- file records -----------------------------------------------------------------------
    def put_records(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        if not self._has(self.records_collection):
            self._created_elsewhere_ok(self._create_records)
        points = [models.PointStruct(id=record_id(r["file_path"]), vector=[1.0], payload=dict(r)) for r in records]
        for start in range(0, len(points), UPSERT_BATCH):
            batch = points[start : start + UPSERT_BATCH]
            self._retry(lambda b=batch: self.client.upsert(self.records_collection, b, wait=True))  # type: ignore[misc]

    def get_record(self, file_path: str) -> dict[str, Any] | None:
        if not self._has(self.records_collection):
            return None
        found = self._retry(
            lambda: self.client.retrieve(self.records_collection, [record_id(file_path)], with_payload=True)
        )
        return dict(found[0].payload or {}) if found else None

    def records(self) -> dict[str, dict[str, Any]]:
        if not self._has(self.records_collection):
            return {}
        out: dict[str, dict[str, Any]] = {}
        offset: Any = None
        while True:
            batch, offset = self._retry(
                lambda o=offset: self.client.scroll(  # type: ignore[misc]
                    self.records_collection, limit=1024, offset=o, with_payload=True, with_vectors=False
                )
            )
            out.update((p.payload["file_path"], dict(p.payload)) for p in batch if p.payload)
            if offset is None:
                return out

    def delete_record(self, file_path: str) -> None:
        if self._has(self.records_collection):
            selector = models.PointIdsList(points=[record_id(file_path)])
            self._retry(lambda: self.client.delete(self.records_collection, selector, wait=True))

    # --- maintenance ------------------------------------------------------------------------
    def optimize(self) -> None:
        """Nothing to do: a server builds its indexes in the background."""

    def close(self) -> None:
        self.client.close()

    def _retry(self, op: Callable[[], T]) -> T:
        return retry(op, self.retry_delays, self.describe())


# --- conversions ----------------------------------------------------------------------------
def _sparse(sparse: Sparse) -> models.SparseVector:
    return models.SparseVector(indices=list(sparse[0]), values=list(sparse[1]))


def _struct(p: NewPoint) -> models.PointStruct:
    return models.PointStruct(id=p.id, vector={DENSE: p.dense, SPARSE: _sparse(p.sparse)}, payload=p.payload)


def _stored(r: Any, with_vectors: bool) -> StoredPoint:
    dense = sparse = None
    if with_vectors and isinstance(r.vector, dict):
        dense = r.vector.get(DENSE)
        sv = r.vector.get(SPARSE)
        sparse = (list(sv.indices), list(sv.values)) if sv is not None else ([], [])
    return StoredPoint(str(r.id), dict(r.payload or {}), float(getattr(r, "score", 0.0) or 0.0), dense, sparse)


def _filter(flt: PointFilter | None) -> models.Filter | None:
    if flt is None or flt.empty:
        return None
    must: list[Any] = []
    for key, values in (
        ("kind", flt.kinds),
        ("file_path", flt.file_paths),
        ("figure_type", flt.figure_types),
        ("doc_id", flt.doc_ids),
        ("image_sha256", flt.image_sha256s),
    ):
        if values is not None:
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(values))))
    if flt.file_sha256 is not None:
        must.append(models.FieldCondition(key="file_sha256", match=models.MatchValue(value=flt.file_sha256)))
    if flt.page_from is not None or flt.page_to is not None:
        must.append(models.FieldCondition(key="page", range=models.Range(gte=flt.page_from, lte=flt.page_to)))
    if flt.ids is not None:
        must.append(models.HasIdCondition(has_id=list(flt.ids)))
    must_not: list[Any] = [models.HasIdCondition(has_id=list(flt.exclude_ids))] if flt.exclude_ids else []
    return models.Filter(must=must or None, must_not=must_not or None)
