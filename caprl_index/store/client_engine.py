"""The `Engine` on qdrant-client: a Qdrant server by URL, or qdrant-client's local mode in a folder.

Retries only transient transport errors (connection refused or reset, timeouts, 5xx); a 4xx or a value
error is a bug or a bad request and is raised at once as StoreError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
    record_id,
)

T = TypeVar("T")
UPSERT_BATCH = 256
RETRIES = 4


def _models() -> Any:
    from qdrant_client import models

    return models


def to_filter(flt: PointFilter | None) -> Any:
    """A qdrant-client Filter for `flt` (None when it has no condition)."""
    if flt is None or flt.empty:
        return None
    m = _models()
    must: list[Any] = []

    def any_of(key: str, values: tuple[str, ...] | None) -> None:
        if values is not None:
            must.append(m.FieldCondition(key=key, match=m.MatchAny(any=list(values))))

    any_of("kind", flt.kinds)
    any_of("file_path", flt.file_paths)
    any_of("figure_type", flt.figure_types)
    any_of("doc_id", flt.doc_ids)
    if flt.file_sha256 is not None:
        must.append(m.FieldCondition(key="file_sha256", match=m.MatchValue(value=flt.file_sha256)))
    if flt.page_from is not None or flt.page_to is not None:
        must.append(m.FieldCondition(key="page", range=m.Range(gte=flt.page_from, lte=flt.page_to)))
    if flt.ids is not None:
        must.append(m.HasIdCondition(has_id=list(flt.ids)))
    must_not = [m.HasIdCondition(has_id=list(flt.exclude_ids))] if flt.exclude_ids else None
    return m.Filter(must=must or None, must_not=must_not)


def _transient(exc: BaseException) -> bool:
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        return (exc.status_code or 0) >= 500
    return isinstance(exc, ResponseHandlingException | ConnectionError | TimeoutError)


class ClientEngine:
    """Points and file records in two collections of a qdrant-client connection."""

    def __init__(self, client: Any, collection: str, *, where: str, server: bool, shards: Any = None) -> None:
        self.client = client
        self.collection = collection
        self.records_collection = collection + RECORDS_SUFFIX
        self._where = where
        self._server = server  # local mode has no payload indexes and nothing transient to retry
        self._shards = shards or {}

    def describe(self) -> str:
        return self._where

    # --- collections ----------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self._call(lambda: self.client.collection_exists(self.collection)))

    def create(self, dim: int) -> None:
        if not self.exists():
            self._created_elsewhere_ok(lambda: self._create_points(dim))
        self.ensure_records()

    def ensure_records(self) -> None:
        if self._call(lambda: self.client.collection_exists(self.records_collection)):
            return
        m = _models()
        self._created_elsewhere_ok(
            lambda: self.client.create_collection(
                self.records_collection, vectors_config=m.VectorParams(size=1, distance=m.Distance.DOT), **self._shards
            )
        )

    def _created_elsewhere_ok(self, create: Callable[[], Any]) -> None:
        """Several ingest machines may race to create a collection: losing the race is fine."""
        try:
            create()
        except Exception as exc:
            if "already exists" not in str(exc):
                raise StoreError(f"cannot create collection in {self._where}: {exc}") from exc

    def _create_points(self, dim: int) -> None:
        m = _models()
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE, on_disk=True)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            hnsw_config=m.HnswConfigDiff(m=16, ef_construct=128),
            **self._shards,
        )
        if not self._server:
            return  # local mode scans; it has no payload indexes (and warns if asked)
        for key in KEYWORD_INDEXES:
            self.client.create_payload_index(self.collection, key, m.PayloadSchemaType.KEYWORD)
        for key in INTEGER_INDEXES:
            self.client.create_payload_index(self.collection, key, m.PayloadSchemaType.INTEGER)
        self.client.create_payload_index(
            self.collection,
            TEXT_INDEX,
            m.TextIndexParams(type=m.TextIndexType.TEXT, tokenizer=m.TokenizerType.WORD, lowercase=True),
        )

    def dense_size(self) -> int | None:
        vectors = self._call(lambda: self.client.get_collection(self.collection)).config.params.vectors
        if not isinstance(vectors, dict) or DENSE not in vectors:
            return None
        return int(vectors[DENSE].size)

    # --- points ---------------------------------------------------------------------------------
    def upsert(self, points: Sequence[NewPoint]) -> None:
        m = _models()
        structs = [
            m.PointStruct(
                id=p.id,
                vector={DENSE: p.dense, SPARSE: m.SparseVector(indices=p.sparse[0], values=p.sparse[1])},
                payload=p.payload,
            )
            for p in points
        ]
        for start in range(0, len(structs), UPSERT_BATCH):
            batch = structs[start : start + UPSERT_BATCH]
            self._call(lambda b=batch: self.client.upsert(self.collection, b, wait=True))  # type: ignore[misc]

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[StoredPoint]:
        if not ids:
            return []
        found = self._call(
            lambda: self.client.retrieve(self.collection, list(ids), with_payload=True, with_vectors=with_vectors)
        )
        return [_stored(p) for p in found]

    def delete(self, flt: PointFilter) -> None:
        if flt.empty:
            raise StoreError("refusing to delete with an empty filter (it would delete every point)")
        m = _models()
        selector = m.FilterSelector(filter=to_filter(flt))
        self._call(lambda: self.client.delete(self.collection, selector, wait=True))

    def count(self, flt: PointFilter | None = None) -> int:
        if not self.exists():
            return 0
        return int(
            self._call(lambda: self.client.count(self.collection, count_filter=to_filter(flt), exact=True)).count
        )

    def scroll(
        self,
        flt: PointFilter | None = None,
        *,
        limit: int = 1024,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[StoredPoint], str | None]:
        batch, next_offset = self._call(
            lambda: self.client.scroll(
                self.collection,
                scroll_filter=to_filter(flt),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
        )
        return [_stored(p) for p in batch], (None if next_offset is None else str(next_offset))

    def query(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None, depth: int, rrf_k: int
    ) -> list[StoredPoint]:
        m = _models()
        qf = to_filter(flt)
        if not sparse or not sparse[0]:
            res = self._call(
                lambda: self.client.query_points(
                    self.collection, query=dense, using=DENSE, limit=limit, query_filter=qf, with_payload=True
                )
            )
            return [_stored(p) for p in res.points]
        prefetch = [
            m.Prefetch(query=dense, using=DENSE, limit=depth, filter=qf),
            m.Prefetch(query=m.SparseVector(indices=sparse[0], values=sparse[1]), using=SPARSE, limit=depth, filter=qf),
        ]
        fusion = m.RrfQuery(rrf=m.Rrf(k=rrf_k))
        res = self._call(
            lambda: self.client.query_points(
                self.collection, prefetch=prefetch, query=fusion, limit=limit, query_filter=qf, with_payload=True
            )
        )
        return [_stored(p) for p in res.points]

    def query_each(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None
    ) -> list[list[StoredPoint]]:
        m = _models()
        qf = to_filter(flt)
        requests = [m.QueryRequest(query=dense, using=DENSE, limit=limit, filter=qf, with_payload=True)]
        if sparse and sparse[0]:
            vector = m.SparseVector(indices=sparse[0], values=sparse[1])
            requests.append(m.QueryRequest(query=vector, using=SPARSE, limit=limit, filter=qf, with_payload=True))
        answers = self._call(lambda: self.client.query_batch_points(self.collection, requests=requests))
        return [[_stored(p) for p in r.points] for r in answers]

    # --- file records ---------------------------------------------------------------------------
    def put_records(self, records: Sequence[dict[str, Any]]) -> None:
        m = _models()
        points = [m.PointStruct(id=record_id(r["file_path"]), vector=[1.0], payload=r) for r in records]
        self._call(lambda: self.client.upsert(self.records_collection, points, wait=True))

    def get_record(self, file_path: str) -> dict[str, Any] | None:
        if not self._call(lambda: self.client.collection_exists(self.records_collection)):
            return None
        found = self._call(lambda: self.client.retrieve(self.records_collection, [record_id(file_path)]))
        return dict(found[0].payload) if found else None

    def records(self) -> dict[str, dict[str, Any]]:
        if not self._call(lambda: self.client.collection_exists(self.records_collection)):
            return {}
        out: dict[str, dict[str, Any]] = {}
        offset = None
        while True:
            batch, offset = self._call(
                lambda o=offset: self.client.scroll(  # type: ignore[misc]
                    self.records_collection, limit=1024, offset=o, with_payload=True
                )
            )
            for p in batch:
                out[p.payload["file_path"]] = dict(p.payload)
            if offset is None:
                return out

    def delete_record(self, file_path: str) -> None:
        if not self._call(lambda: self.client.collection_exists(self.records_collection)):
            return
        m = _models()
        ids = m.PointIdsList(points=[record_id(file_path)])
        self._call(lambda: self.client.delete(self.records_collection, ids, wait=True))

    def optimize(self) -> None:
        pass  # the server builds its indexes itself

    def close(self) -> None:
        self.client.close()

    def _call(self, op: Callable[[], T]) -> T:
        """Run one client call; transient transport errors of a server are retried with backoff."""
        for attempt in range(RETRIES):
            try:
                return op()
            except StoreError:
                raise
            except Exception as exc:
                if not (self._server and _transient(exc)) or attempt == RETRIES - 1:
                    raise StoreError(f"Qdrant ({self._where}) failed: {type(exc).__name__}: {exc}") from exc
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


def _stored(point: Any) -> StoredPoint:
    vector = point.vector if isinstance(point.vector, dict) else {}
    dense = vector.get(DENSE)
    sparse = vector.get(SPARSE)
    return StoredPoint(
        id=str(point.id),
        payload=dict(point.payload or {}),
        score=float(getattr(point, "score", 0.0) or 0.0),
        dense=list(dense) if dense is not None else None,
        sparse=(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
    )


def connect_server(url: str, api_key: str | None, collection: str, shards: dict[str, Any]) -> ClientEngine:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url, api_key=api_key, timeout=120)
    try:
        client.get_collections()
    except Exception as exc:
        raise StoreError(
            f"cannot reach Qdrant at {url}: {type(exc).__name__}: {exc}. Start it (docker compose up qdrant), "
            "check CAPRL_QDRANT_URL / CAPRL_QDRANT_API_KEY, or unset the URL for the embedded store."
        ) from exc
    return ClientEngine(client, collection, where=url, server=True, shards=shards)


def open_local(path: Path, collection: str) -> ClientEngine:
    """qdrant-client's local mode in `path` (one process at a time)."""
    from qdrant_client import QdrantClient

    where = f"local folder {path}"
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreError(
                f"the index folder {path} is in use by another caprl-index process. Wait for it to finish, or "
                "run a Qdrant server (docker compose up qdrant) and set CAPRL_QDRANT_URL so several processes "
                "can write at once."
            ) from exc
        raise StoreError(f"cannot open the index folder {path}: {exc}") from exc
    except Exception as exc:  # a damaged meta.json or storage.sqlite: say so, touch nothing
        raise StoreError(
            f"the index folder {path} is damaged ({type(exc).__name__}: {exc}). Nothing was changed; restore "
            "it from a backup, or move it aside and ingest again into a new folder."
        ) from exc
    return ClientEngine(client, collection, where=where, server=False)
