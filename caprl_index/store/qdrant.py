"""The index: chunk points and file records, on whichever Qdrant engine the settings choose.

`QdrantStore` speaks in the project's records (`NewPoint`, `StoredPoint`, `PointFilter`, `FileRecord`);
only the engines behind it talk to Qdrant. Crash safety comes from the order of writes: a file's new points
are upserted, then its stale points are deleted, then its file record is written, each durable when it
returns. A run killed anywhere leaves either the old record (the file is re-ingested next time, overwriting
by deterministic ids) or the new one with exactly the new points.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from caprl_index.config import Settings
from caprl_index.errors import StoreError
from caprl_index.store.engine import DENSE, SPARSE, Engine, NewPoint, PointFilter, Sparse, StoredPoint
from caprl_index.store.records import FileRecord

__all__ = ["DENSE", "SPARSE", "QdrantStore"]


class QdrantStore:
    """One collection of chunk points plus `<collection>_files` with one record per file.

    `create=False` opens for reading only: a missing index is reported, never created.
    """

    def __init__(self, settings: Settings, *, create: bool = True, engine: Engine | None = None) -> None:
        self.settings = settings
        self.collection = settings.collection
        self._create = create
        self._engine = engine

    # --- connection -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._open()
        return self._engine

    def _open(self) -> Engine:
        s = self.settings
        if s.qdrant_url:
            from caprl_index.store.server import ServerEngine, connect

            key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
            client = connect(s.qdrant_url, key)
            return ServerEngine(
                client, s.collection, shards=s.shards, replication_factor=s.replication_factor, describe=s.qdrant_url
            )
        if not self._create and not s.qdrant_path.is_dir():
            raise StoreError(self.missing_message())
        from caprl_index.store.edge import EdgeEngine

        return EdgeEngine(Path(s.qdrant_path), s.collection)

    def missing_message(self) -> str:
        return (
            f"no index in {self.describe()} (collection {self.collection!r}): run `caprl-index ingest PATH` first, "
            "or point --qdrant-path / CAPRL_QDRANT_PATH at the index folder"
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def describe(self) -> str:
        s = self.settings
        return s.qdrant_url or f"embedded index {s.qdrant_path}"

    # --- collections ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.engine.exists()

    def require(self) -> None:
        """Raise StoreError naming the fix when the collection does not exist (readers)."""
        if not self.exists():
            raise StoreError(self.missing_message())

    def ensure_collection(self, dim: int) -> None:
        """Create the collections with vector, sparse and payload indexes, or check the existing ones."""
        self.engine.create(dim)
        size = self.engine.dense_size()
        if size is None:
            raise StoreError(
                f"collection {self.collection!r} was not created by caprl-index (no {DENSE!r} vector). "
                "Choose another name with --collection."
            )
        if size != dim:
            raise StoreError(
                f"collection {self.collection!r} holds {size}-d vectors but the embedding model gives {dim}-d. "
                "Use a new --collection for a different CAPRL_EMBED_MODEL."
            )

    def optimize(self) -> None:
        """Build the indexes after a bulk load (the embedded engine; a server does it itself)."""
        self.engine.optimize()

    # --- points -----------------------------------------------------------------------------
    def upsert(self, points: Sequence[NewPoint]) -> None:
        self.engine.upsert(points)

    def stored_vectors(self, ids: Sequence[str]) -> dict[str, tuple[str, list[float]]]:
        """Existing points' text and dense vector, to skip re-embedding unchanged chunks."""
        if not ids or not self.exists():
            return {}
        return {
            p.id: (p.payload.get("text", ""), p.dense)
            for p in self.engine.retrieve(ids, with_vectors=True)
            if p.dense is not None
        }

    def delete_stale(self, file_path: str, keep_ids: Iterable[str]) -> None:
        """Delete the file's points that are not among `keep_ids` (old versions, vanished chunks)."""
        self.engine.delete(PointFilter(file_paths=(file_path,), exclude_ids=tuple(keep_ids)))

    def delete_version(self, file_path: str, sha256: str) -> None:
        """Delete the points of one version of a file (what a failed attempt wrote)."""
        if self.exists():
            self.engine.delete(PointFilter(file_paths=(file_path,), file_sha256=sha256))

    def delete_file(self, file_path: str) -> None:
        """Remove a file's points, then its record."""
        if self.exists():
            self.engine.delete(PointFilter(file_paths=(file_path,)))
        self.engine.delete_record(file_path)

    def count(self, flt: PointFilter | None = None) -> int:
        return self.engine.count(flt) if self.exists() else 0

    def point_counts(self, paths: Iterable[str]) -> dict[str, int]:
        """Points stored per file path (a payload-indexed count each)."""
        if not self.exists():
            return dict.fromkeys(paths, 0)
        return {p: self.engine.count(PointFilter(file_paths=(p,))) for p in paths}

    def points(self, flt: PointFilter) -> list[StoredPoint]:
        """Every point matching `flt`, with payloads (for one file: its chunks)."""
        if not self.exists():
            return []
        out: list[StoredPoint] = []
        offset: str | None = None
        while True:
            batch, offset = self.engine.scroll(flt, limit=1024, offset=offset)
            out += batch
            if offset is None:
                return out

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        return self.engine.retrieve(ids) if self.exists() else []

    # --- file records -----------------------------------------------------------------------
    def put_record(self, record: FileRecord) -> None:
        self.engine.put_records([record.to_payload()])

    def get_record(self, file_path: str) -> FileRecord | None:
        found = self.engine.get_record(file_path)
        return FileRecord.from_payload(found) if found else None

    def records(self) -> dict[str, FileRecord]:
        """All file records, by file path."""
        return {path: FileRecord.from_payload(r) for path, r in self.engine.records().items()}

    # --- queries ----------------------------------------------------------------------------
    def query(
        self,
        dense: list[float],
        sparse: Sparse,
        *,
        limit: int,
        flt: PointFilter | None = None,
        hybrid: bool = True,
        depth: int | None = None,
        rrf_k: int = 2,
    ) -> list[StoredPoint]:
        """Dense + BM25 sparse prefetches (`depth` candidates each) fused by Qdrant's reciprocal-rank fusion
        (constant `rrf_k`, ranks from 0), or dense only."""
        if not self.exists():
            return []
        depth = depth or max(limit * 4, 40)
        return self.engine.query(dense, sparse if hybrid else None, limit=limit, flt=flt, depth=depth, rrf_k=rrf_k)

    def query_each(
        self, dense: list[float], sparse: Sparse, *, limit: int, flt: PointFilter | None = None, hybrid: bool = True
    ) -> list[list[StoredPoint]]:
        """The ranked points of each retriever apart (dense, then BM25 when hybrid), in one batch request."""
        if not self.exists():
            return []
        return self.engine.query_each(dense, sparse if hybrid else None, limit=limit, flt=flt)
