"""The embedded engine: Qdrant Edge (`qdrant-edge-py`, pinned), Qdrant's own engine in this process.

The only module that imports `qdrant_edge`. Layout under the index folder (`CAPRL_QDRANT_PATH`):

    <path>/edge/<collection>/          chunk points: an Edge shard (wal/, segments/, edge_config.json)
    <path>/edge/<collection>_files/    file records: an Edge shard with a 1-d placeholder vector
    <path>/edge/<collection>.lock      held (flock) while an engine has the collection open

Durability: Edge writes every update to its WAL before `update` returns, and a reopen replays it, so a write
survives a killed process (SIGKILL, OOM) without `flush()`; `tests/test_store_engines.py` kills a writer to
show it. The WAL lives in memory-mapped files, so an OS crash or power cut can still lose the tail:
`put_records` therefore flushes the points shard, then writes the record and flushes the records shard. A
record on disk then always comes after its points, the order the pipeline's crash safety rests on.

Bulk loading: Edge never optimizes in the background. Writes land in an appendable segment (searched by
brute force), and `optimize()` builds HNSW, merges segments and adds the payload indexes that ingest does not
filter on; indexes kept up point by point during a load cost a third of the upsert rate and are rebuilt by
the optimizer anyway. The keyword indexes ingest filters on (file path, file hash) exist from the start.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

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
from caprl_index.store.folder_lock import FolderLock, in_use_message
from caprl_index.store.transfer import is_legacy_local, legacy_error

T = TypeVar("T")
EDGE_DIR = "edge"
UPSERT_BATCH = 1024
INGEST_INDEXES = ("file_path", "file_sha256")  # what ingest filters on: delete a file, drop stale points
_HNSW = qe.HnswIndexConfig(m=16, ef_construct=128, full_scan_threshold=10_000)
# prevent_unoptimized=False keeps fresh points visible before optimize(); the rest are Qdrant's defaults.
_OPTIMIZERS = qe.EdgeOptimizersConfig(prevent_unoptimized=False)


def edge_dir(path: Path) -> Path:
    """Where the Edge shards of an index folder live."""
    return Path(path) / EDGE_DIR


class EdgeEngine:
    """`Engine` on Qdrant Edge: the chunk points and the file records of `collection` in folders under `path`."""

    def __init__(self, path: Path, collection: str) -> None:
        self.path = Path(path)
        self.collection = collection
        if is_legacy_local(self.path):
            raise legacy_error(self.path)  # never write an Edge index into the old format's folder
        self._points_dir = edge_dir(self.path) / collection
        self._records_dir = edge_dir(self.path) / (collection + RECORDS_SUFFIX)
        self._lock = FolderLock(edge_dir(self.path) / f"{collection}.lock", self.path)
        self._lock.acquire()
        try:
            self._points = _load(self._points_dir)
            self._records = _load(self._records_dir)
        except BaseException:
            self.close()
            raise

    # --- collections ------------------------------------------------------------------------
    def describe(self) -> str:
        return f"embedded index {self.path}"

    def exists(self) -> bool:
        return self._points is not None

    def create(self, dim: int) -> None:
        if self._points is None:
            self._points = _create(self._points_dir, _points_config(dim), INGEST_INDEXES)
        elif self.dense_size() != dim:
            raise StoreError(
                f"collection {self.collection!r} in {self.path} holds {self.dense_size()}-d vectors but the "
                f"embedding model gives {dim}-d. Use a new --collection for a different CAPRL_EMBED_MODEL."
            )
        self.ensure_records()

    def ensure_records(self) -> None:
        if self._records is None:
            self._records = _create(self._records_dir, _records_config(), ())

    def dense_size(self) -> int | None:
        if self._points is None:
            return None
        return _dense_size(self._points_dir)

    # --- points -----------------------------------------------------------------------------
    def upsert(self, points: Sequence[NewPoint]) -> None:
        if not points:
            return
        shard = self._need_points()
        for start in range(0, len(points), UPSERT_BATCH):  # one WAL record each, well inside a 32 MiB segment
            op = qe.UpdateOperation.upsert_points([_point(p) for p in points[start : start + UPSERT_BATCH]])
            self._call(lambda o=op: shard.update(o), "write points to")  # type: ignore[misc]

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[StoredPoint]:
        if not ids or self._points is None:
            return []
        shard = self._points
        found = self._call(lambda: shard.retrieve(list(ids), True, with_vectors), "read")
        return [_stored(r, with_vectors) for r in found]

    def delete(self, flt: PointFilter) -> None:
        if flt.empty:
            raise StoreError("refusing to delete with an empty filter: it would delete every point")
        if self._points is not None:
            op = qe.UpdateOperation.delete_points_by_filter(_filter(flt) or qe.Filter())
            shard = self._points
            self._call(lambda: shard.update(op), "delete points from")

    def count(self, flt: PointFilter | None = None) -> int:
        if self._points is None:
            return 0
        shard, request = self._points, qe.CountRequest(exact=True, filter=_filter(flt))
        return int(self._call(lambda: shard.count(request), "count"))

    def scroll(
        self,
        flt: PointFilter | None = None,
        *,
        limit: int = 1024,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[StoredPoint], str | None]:
        if self._points is None:
            return [], None
        shard = self._points
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=_filter(flt), with_payload=True, with_vector=with_vectors
        )
        found, next_id = self._call(lambda: shard.scroll(request), "read")
        return [_stored(r, with_vectors) for r in found], None if next_id is None else str(next_id)

    # --- queries ----------------------------------------------------------------------------
    def query(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None, depth: int, rrf_k: int
    ) -> list[StoredPoint]:
        if self._points is None:
            return []
        f = _filter(flt)
        if not sparse or not sparse[0]:
            return self._search(qe.QueryRequest(limit=limit, query=_nearest(dense), filter=f, with_payload=True))
        prefetches = [
            qe.Prefetch(limit=depth, query=_nearest(dense), filter=f),
            qe.Prefetch(limit=depth, query=_nearest(sparse), filter=f),
        ]
        # Every fused candidate (at most 2 x depth) comes back without payload, so that ties, which Edge leaves in
        # hash order, are broken the same way on every run and engine; payloads are read for the winners only.
        request = qe.QueryRequest(
            limit=2 * depth,
            prefetches=prefetches,
            query=qe.Fusion.Rrf(k=rrf_k),  # type: ignore[arg-type] # the stub omits Rrf
            filter=f,
            with_payload=False,
        )
        ranked = fused_order(self._search(request), limit)
        by_id = {p.id: p for p in self.retrieve([p.id for p in ranked])}
        return [StoredPoint(p.id, by_id[p.id].payload, p.score) for p in ranked if p.id in by_id]

    def query_each(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None
    ) -> list[list[StoredPoint]]:
        if self._points is None:
            return []
        f = _filter(flt)
        vectors: list[list[float] | Sparse] = [dense] if not sparse or not sparse[0] else [dense, sparse]
        batch = qe.QueryBatchRequest(
            [qe.QueryRequest(limit=limit, query=_nearest(v), filter=f, with_payload=True) for v in vectors]
        )
        shard = self._points
        results = self._call(lambda: shard.query_batch(batch), "query")
        return [fused_order([_stored(p, False) for p in ranked], limit) for ranked in results]

    def _search(self, request: qe.QueryRequest) -> list[StoredPoint]:
        shard = self._need_points()
        return [_stored(p, False) for p in self._call(lambda: shard.query(request), "query")]

    # --- file records -----------------------------------------------------------------------
    def put_records(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        self.ensure_records()
        if self._points is not None:
            self._call(self._points.flush, "flush")  # the points a record vouches for reach the disk first
        points = [qe.Point(record_id(r["file_path"]), [1.0], dict(r)) for r in records]
        shard = self._records
        assert shard is not None  # ensure_records made it
        self._call(lambda: shard.update(qe.UpdateOperation.upsert_points(points)), "write file records to")
        self._call(shard.flush, "flush")

    def get_record(self, file_path: str) -> dict[str, Any] | None:
        if self._records is None:
            return None
        shard = self._records
        found = self._call(lambda: shard.retrieve([record_id(file_path)], True, False), "read")
        return dict(found[0].payload or {}) if found else None

    def records(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        shard, offset = self._records, None
        while shard is not None:
            request = qe.ScrollRequest(offset=offset, limit=1024, with_payload=True, with_vector=False)
            found, offset = self._call(lambda s=shard, r=request: s.scroll(r), "read")  # type: ignore[misc]
            out.update((r.payload["file_path"], dict(r.payload)) for r in found if r.payload)
            if offset is None:
                break
        return out

    def delete_record(self, file_path: str) -> None:
        if self._records is not None:
            op, shard = qe.UpdateOperation.delete_points([record_id(file_path)]), self._records
            self._call(lambda: shard.update(op), "delete a file record from")

    # --- maintenance ------------------------------------------------------------------------
    def optimize(self) -> None:
        """Build HNSW and merge segments, then add the payload indexes a bulk load skipped."""
        if self._points is None:
            return
        shard = self._points
        self._call(shard.optimize, "optimize")
        have = set(self._call(shard.info, "read").payload_schema)
        for key, schema in _query_indexes().items():
            if key not in have:
                op = qe.UpdateOperation.create_field_index(key, schema)
                self._call(lambda o=op: shard.update(o), "index")  # type: ignore[misc]

    def close(self) -> None:
        for shard in (getattr(self, "_points", None), getattr(self, "_records", None)):
            if shard is not None:
                shard.close()  # flushes
        self._points = self._records = None
        self._lock.release()

    def _need_points(self) -> qe.EdgeShard:
        if self._points is None:
            raise StoreError(f"collection {self.collection!r} does not exist in {self.path}: run an ingest first.")
        return self._points

    def _call(self, op: Callable[[], T], what: str) -> T:
        try:
            return op()
        except BaseException as exc:
            if not _engine_error(exc):
                raise
            raise StoreError(f"Qdrant Edge could not {what} the index in {self.path}: {exc}") from exc


# --- shards ---------------------------------------------------------------------------------
def _load(folder: Path) -> qe.EdgeShard | None:
    """Open an existing shard; None when there is none; StoreError (nothing deleted) when it is damaged."""
    if not (folder / "edge_config.json").exists():
        if folder.exists() and any(folder.iterdir()):
            raise StoreError(_damaged(folder, "edge_config.json is missing"))
        return None
    try:
        return qe.EdgeShard.load(str(folder))
    except BaseException as exc:
        if not _engine_error(exc):
            raise
        if "WouldBlock" in str(exc):  # Edge's own WAL lock: another process without our lock file
            raise StoreError(in_use_message(folder.parent.parent)) from exc
        raise StoreError(_damaged(folder, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from exc


def _create(folder: Path, config: qe.EdgeConfig, keyword_indexes: Sequence[str]) -> qe.EdgeShard:
    """Create a shard beside its final place and rename it there, so a crash never leaves half a shard."""
    staging = folder.with_name(folder.name + ".creating")
    if staging.exists():
        shutil.rmtree(staging)  # our own unfinished creation from a crashed run: it never held data
    shard = qe.EdgeShard.create(str(staging), config)
    for key in keyword_indexes:
        shard.update(qe.UpdateOperation.create_field_index(key, _keyword_index()))
    shard.close()
    os.replace(staging, folder)
    return qe.EdgeShard.load(str(folder))


def _damaged(folder: Path, reason: str) -> str:
    return (
        f"the index folder {folder} is damaged and cannot be opened ({reason}). Nothing was deleted. Restore it "
        f"from a backup, or move {folder.parent.parent} aside and run `caprl-index ingest` again to rebuild the "
        "index (captions come back from the caption cache)."
    )


def _engine_error(exc: BaseException) -> bool:
    # Edge raises plain Exception/ValueError for errors and pyo3's PanicException (a BaseException, not
    # importable) when a damaged file trips an assertion in Rust; Ctrl-C and exits must pass through.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _dense_size(folder: Path) -> int | None:
    # The shard's own config file; the Python API has no getter for a loaded shard's vector parameters.
    raw = json.loads((folder / "edge_config.json").read_text(encoding="utf-8"))
    dense = (raw.get("vectors") or {}).get(DENSE)
    return int(dense["size"]) if dense else None


def _points_config(dim: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=_HNSW,
        optimizers=_OPTIMIZERS,
    )


def _records_config() -> qe.EdgeConfig:
    # The same shape as the server's records collection: one unnamed 1-d vector that is always [1.0].
    return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=1, distance=qe.Distance.Dot))


# Payload indexes stay in their memory-mapped files (Cold): held in RAM, the keyword maps are rebuilt on the
# heap at every open, which was most of the open time (100k points: open 1.04 s -> 0.31 s, RSS 614 -> 415 MB,
# filtered queries unchanged at ~5 ms).
def _keyword_index() -> qe.KeywordIndexParams:
    return qe.KeywordIndexParams(memory=qe.Memory.Cold)


def _query_indexes() -> dict[str, Any]:
    cold = qe.Memory.Cold
    out: dict[str, Any] = {key: _keyword_index() for key in KEYWORD_INDEXES if key not in INGEST_INDEXES}
    out.update({key: qe.IntegerIndexParams(lookup=True, range=True, memory=cold) for key in INTEGER_INDEXES})
    out[TEXT_INDEX] = qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True, memory=cold)
    return out


# --- conversions ----------------------------------------------------------------------------
def _nearest(vector: list[float] | Sparse) -> Any:
    if isinstance(vector, tuple):
        return qe.Query.Nearest(qe.SparseVector(vector[0], vector[1]), using=SPARSE)
    return qe.Query.Nearest(vector, using=DENSE)


def _point(p: NewPoint) -> qe.Point:
    return qe.Point(p.id, {DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse[0], p.sparse[1])}, p.payload)


def _stored(r: Any, with_vectors: bool) -> StoredPoint:
    dense = sparse = None
    if with_vectors and isinstance(r.vector, dict):
        dense = r.vector.get(DENSE)
        sv = r.vector.get(SPARSE)
        sparse = (list(sv.indices), list(sv.values)) if sv is not None else ([], [])
    return StoredPoint(str(r.id), dict(r.payload or {}), float(getattr(r, "score", 0.0)), dense, sparse)


def _filter(flt: PointFilter | None) -> qe.Filter | None:
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
            must.append(qe.FieldCondition(key, match=qe.MatchAny(list(values))))
    if flt.file_sha256 is not None:
        must.append(qe.FieldCondition("file_sha256", match=qe.MatchValue(flt.file_sha256)))
    if flt.page_from is not None or flt.page_to is not None:
        must.append(qe.FieldCondition("page", range=qe.RangeFloat(gte=flt.page_from, lte=flt.page_to)))
    if flt.ids is not None:
        must.append(qe.HasIdCondition(set(flt.ids)))
    must_not: list[Any] = [qe.HasIdCondition(set(flt.exclude_ids))] if flt.exclude_ids else []
    return qe.Filter(must=must or None, must_not=must_not or None)
