"""Qdrant storage: the chunk collection, a small file-record collection beside it, and hybrid queries.

Embedded local mode (a folder, one process at a time) by default; a server by URL (API key, TLS by https).
Crash safety comes from the order of writes: a file's new points are upserted, then its stale points are
deleted, then its file record is written. A run killed anywhere leaves either the old record (the file is
re-ingested next time, overwriting by deterministic ids) or the new one with exactly the new points.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from caprl_index.config import Settings
from caprl_index.errors import StoreError
from caprl_index.store.payload import NAMESPACE

DENSE = "text-dense"  # LlamaIndex QdrantVectorStore's default dense vector name
SPARSE = "bm25"  # ours; the stock store ignores it unless asked for hybrid
UPSERT_BATCH = 256
RECORDS_SUFFIX = "_files"
_KEYWORD_INDEXES = ("file_path", "file_sha256", "kind", "figure_type", "caption_source", "doc_id")


def _models() -> Any:
    from qdrant_client import models

    return models


class QdrantStore:
    """One collection of chunk points plus `<collection>_files` with one record per ingested file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.collection = settings.collection
        self.records_collection = settings.collection + RECORDS_SUFFIX
        self._client: Any = None

    # --- connection -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        from qdrant_client import QdrantClient

        s = self.settings
        if s.qdrant_url:
            key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
            client = QdrantClient(url=s.qdrant_url, api_key=key, timeout=120)
            try:
                client.get_collections()
            except Exception as exc:
                raise StoreError(
                    f"cannot reach Qdrant at {s.qdrant_url}: {exc}. Start it (docker compose up qdrant), "
                    "check CAPRL_QDRANT_URL / CAPRL_QDRANT_API_KEY, or unset the URL for the embedded store."
                ) from exc
            return client
        s.qdrant_path.mkdir(parents=True, exist_ok=True)
        try:
            return QdrantClient(path=str(s.qdrant_path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreError(
                    f"the index folder {s.qdrant_path} is in use by another caprl-index process. Wait for it "
                    "to finish, or run a Qdrant server (docker compose up qdrant) and set CAPRL_QDRANT_URL "
                    "so several processes can write at once."
                ) from exc
            raise StoreError(f"cannot open the index folder {s.qdrant_path}: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def describe(self) -> str:
        s = self.settings
        return s.qdrant_url or f"local folder {s.qdrant_path}"

    # --- collections ------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def ensure_collection(self, dim: int) -> None:
        """Create the collections with vector, sparse and payload indexes, or check the existing ones."""
        if not self.exists():
            self._created_elsewhere_ok(lambda: self._create(dim))
        self._check_dim(dim)
        if not self.client.collection_exists(self.records_collection):
            m = _models()
            self._created_elsewhere_ok(
                lambda: self.client.create_collection(
                    self.records_collection,
                    vectors_config=m.VectorParams(size=1, distance=m.Distance.DOT),
                    shard_number=self.settings.shards,
                    replication_factor=self.settings.replication_factor,
                )
            )

    def _created_elsewhere_ok(self, create: Any) -> None:
        """Several ingest machines may race to create a collection: losing the race is fine."""
        try:
            create()
        except Exception as exc:
            if "already exists" not in str(exc):
                raise StoreError(f"cannot create collection in {self.describe()}: {exc}") from exc

    def _create(self, dim: int) -> None:
        m = _models()
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE, on_disk=True)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            shard_number=self.settings.shards,
            replication_factor=self.settings.replication_factor,
            hnsw_config=m.HnswConfigDiff(m=16, ef_construct=128),
        )
        if self.settings.qdrant_url is None:
            return  # the embedded store scans; it has no payload indexes (and warns if asked)
        for key in _KEYWORD_INDEXES:
            self.client.create_payload_index(self.collection, key, m.PayloadSchemaType.KEYWORD)
        self.client.create_payload_index(self.collection, "page", m.PayloadSchemaType.INTEGER)
        self.client.create_payload_index(
            self.collection,
            "text",
            m.TextIndexParams(type=m.TextIndexType.TEXT, tokenizer=m.TokenizerType.WORD, lowercase=True),
        )

    def _check_dim(self, dim: int) -> None:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        if not isinstance(vectors, dict) or DENSE not in vectors:
            raise StoreError(
                f"collection {self.collection!r} was not created by caprl-index (no {DENSE!r} vector). "
                "Choose another name with --collection."
            )
        if vectors[DENSE].size != dim:
            raise StoreError(
                f"collection {self.collection!r} holds {vectors[DENSE].size}-d vectors but the embedding model "
                f"gives {dim}-d. Use a new --collection for a different CAPRL_EMBED_MODEL."
            )

    # --- points -----------------------------------------------------------------------------
    def upsert(self, points: Sequence[tuple[str, list[float], tuple[list[int], list[float]], dict]]) -> None:
        """Write (id, dense vector, sparse vector, payload) points in batches."""
        m = _models()
        structs = [
            m.PointStruct(
                id=pid,
                vector={DENSE: dense, SPARSE: m.SparseVector(indices=sp[0], values=sp[1])},
                payload=payload,
            )
            for pid, dense, sp, payload in points
        ]
        for start in range(0, len(structs), UPSERT_BATCH):
            self._retry(
                lambda b=structs[start : start + UPSERT_BATCH]: self.client.upsert(self.collection, b, wait=True)
            )

    def stored_vectors(self, ids: Sequence[str]) -> dict[str, tuple[str, list[float]]]:
        """Existing points' text and dense vector, to skip re-embedding unchanged chunks."""
        if not ids or not self.exists():
            return {}
        found = self.client.retrieve(self.collection, list(ids), with_payload=["text"], with_vectors=[DENSE])
        out = {}
        for p in found:
            vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else p.vector
            if vec is not None and p.payload:
                out[str(p.id)] = (p.payload.get("text", ""), list(vec))
        return out

    def delete_stale(self, file_path: str, keep_ids: Iterable[str]) -> None:
        """Delete the file's points that are not among `keep_ids` (old versions, vanished chunks)."""
        m = _models()
        must_not = [m.HasIdCondition(has_id=list(keep_ids))]
        flt = m.Filter(must=[self._match("file_path", file_path)], must_not=must_not)
        self._retry(lambda: self.client.delete(self.collection, m.FilterSelector(filter=flt), wait=True))

    def delete_file(self, file_path: str) -> None:
        """Remove a file's points, then its record."""
        m = _models()
        if self.exists():
            flt = m.Filter(must=[self._match("file_path", file_path)])
            self.client.delete(self.collection, m.FilterSelector(filter=flt), wait=True)
        if self.client.collection_exists(self.records_collection):
            self.client.delete(self.records_collection, m.PointIdsList(points=[_record_id(file_path)]), wait=True)

    def count(self, **match: Any) -> int:
        if not self.exists():
            return 0
        m = _models()
        flt = m.Filter(must=[self._match(k, v) for k, v in match.items()]) if match else None
        return int(self.client.count(self.collection, count_filter=flt, exact=True).count)

    @staticmethod
    def _match(key: str, value: Any) -> Any:
        m = _models()
        if isinstance(value, (list, tuple)):
            return m.FieldCondition(key=key, match=m.MatchAny(any=list(value)))
        return m.FieldCondition(key=key, match=m.MatchValue(value=value))

    # --- file records -----------------------------------------------------------------------
    def put_record(self, record: dict[str, Any]) -> None:
        m = _models()
        point = m.PointStruct(id=_record_id(record["file_path"]), vector=[1.0], payload=record)
        self._retry(lambda: self.client.upsert(self.records_collection, [point], wait=True))

    def get_record(self, file_path: str) -> dict[str, Any] | None:
        if not self.client.collection_exists(self.records_collection):
            return None
        found = self.client.retrieve(self.records_collection, [_record_id(file_path)], with_payload=True)
        return dict(found[0].payload) if found else None

    def records(self) -> dict[str, dict[str, Any]]:
        """All file records, by file path."""
        if not self.client.collection_exists(self.records_collection):
            return {}
        out: dict[str, dict[str, Any]] = {}
        offset = None
        while True:
            batch, offset = self.client.scroll(
                self.records_collection, limit=1024, offset=offset, with_payload=True, with_vectors=False
            )
            for p in batch:
                out[p.payload["file_path"]] = dict(p.payload)
            if offset is None:
                return out

    # --- queries ----------------------------------------------------------------------------
    def query(
        self,
        dense: list[float],
        sparse: tuple[list[int], list[float]],
        *,
        limit: int,
        flt: Any = None,
        hybrid: bool = True,
        depth: int | None = None,
        rrf_k: int | None = None,
    ) -> list[Any]:
        """Dense + BM25 sparse prefetches (`depth` candidates each) fused by Qdrant's reciprocal-rank fusion
        (constant `rrf_k`, ranks from 0; Qdrant's default when None), or dense only."""
        m = _models()
        if not self.exists():
            return []
        if not hybrid or not sparse[0]:
            res = self.client.query_points(
                self.collection, query=dense, using=DENSE, limit=limit, query_filter=flt, with_payload=True
            )
            return list(res.points)
        depth = depth or max(limit * 4, 40)
        prefetch = [
            m.Prefetch(query=dense, using=DENSE, limit=depth, filter=flt),
            m.Prefetch(
                query=m.SparseVector(indices=sparse[0], values=sparse[1]), using=SPARSE, limit=depth, filter=flt
            ),
        ]
        fusion = m.FusionQuery(fusion=m.Fusion.RRF) if rrf_k is None else m.RrfQuery(rrf=m.Rrf(k=rrf_k))
        res = self.client.query_points(
            self.collection, prefetch=prefetch, query=fusion, limit=limit, query_filter=flt, with_payload=True
        )
        return list(res.points)

    def query_each(
        self,
        dense: list[float],
        sparse: tuple[list[int], list[float]],
        *,
        limit: int,
        flt: Any = None,
        hybrid: bool = True,
    ) -> list[list[Any]]:
        """The ranked points of each retriever apart (dense, then BM25 when hybrid), in one batch request."""
        m = _models()
        if not self.exists():
            return []
        requests = [m.QueryRequest(query=dense, using=DENSE, limit=limit, filter=flt, with_payload=True)]
        if hybrid and sparse[0]:
            vector = m.SparseVector(indices=sparse[0], values=sparse[1])
            requests.append(m.QueryRequest(query=vector, using=SPARSE, limit=limit, filter=flt, with_payload=True))
        return [list(r.points) for r in self.client.query_batch_points(self.collection, requests=requests)]

    def _retry(self, op: Any, attempts: int = 4) -> Any:
        """Retry transient server errors; the embedded store raises at once (nothing transient there)."""
        for attempt in range(attempts):
            try:
                return op()
            except Exception as exc:
                if self.settings.qdrant_url is None or attempt == attempts - 1:
                    raise StoreError(f"Qdrant ({self.describe()}) failed: {exc}") from exc
                time.sleep(0.5 * 2**attempt)
        return None


def _record_id(file_path: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"record:{file_path}"))
