"""What caprl-index asks of a Qdrant engine, in the project's own records.

Two engines implement `Engine`:

- `EdgeEngine` (`store/edge.py`): Qdrant Edge, Qdrant's engine in-process, in a folder (the embedded default);
- `ServerEngine` (`store/server.py`): qdrant-client against a Qdrant server or cluster (tests run it on
  qdrant-client's in-process API).

Both hold one collection of chunk points, with the named vectors `text-dense` (cosine) and `bm25`
(sparse, IDF modifier), and one collection of file records beside it (`<collection>_files`), with the same
point ids and payloads, so an index moves between them unchanged. Nothing outside `store/` imports
`qdrant_client` or `qdrant_edge`; callers speak in `PointFilter`, `NewPoint` and `StoredPoint`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DENSE = "text-dense"  # LlamaIndex QdrantVectorStore's default dense vector name
SPARSE = "bm25"  # ours; the stock store ignores it unless asked for hybrid
RECORDS_SUFFIX = "_files"
NAMESPACE = uuid.UUID("5b0c7f3e-2f52-4d0e-9a57-8a1b6c0e4c11")

# Payload indexes every engine builds on the points (the design's list, plus what filters use).
KEYWORD_INDEXES = ("file_path", "file_sha256", "kind", "figure_type", "caption_source", "doc_id", "image_sha256")
INTEGER_INDEXES = ("page",)
TEXT_INDEX = "text"

Sparse = tuple[list[int], list[float]]  # (indices, values)


@dataclass(frozen=True)
class PointFilter:
    """Conditions on points; every one that is set must hold (`None` = no condition)."""

    kinds: tuple[str, ...] | None = None  # payload `kind` is any of these
    file_paths: tuple[str, ...] | None = None  # payload `file_path` is any of these
    file_sha256: str | None = None
    page_from: int | None = None  # inclusive, 1-based
    page_to: int | None = None  # inclusive
    figure_types: tuple[str, ...] | None = None
    doc_ids: tuple[str, ...] | None = None  # LlamaIndex ref_doc_id (payload `doc_id`)
    image_sha256s: tuple[str, ...] | None = None  # the figure crop is any of these
    ids: tuple[str, ...] | None = None  # point id is any of these
    exclude_ids: tuple[str, ...] = ()  # point id is none of these

    @property
    def empty(self) -> bool:
        return self == PointFilter()


@dataclass(frozen=True)
class NewPoint:
    """A point to write: id, dense vector, BM25 sparse vector, payload."""

    id: str
    dense: list[float]
    sparse: Sparse
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredPoint:
    """A point read back; `score` is set by queries, vectors only when asked for."""

    id: str
    payload: dict[str, Any]
    score: float = 0.0
    dense: list[float] | None = None
    sparse: Sparse | None = None


class Engine(Protocol):
    """One collection of chunk points plus its file-record collection, on one Qdrant engine.

    Writes are durable when the call returns (the crash-safety order of the pipeline relies on it).
    Methods are called from one thread at a time.
    """

    collection: str

    def describe(self) -> str:
        """Where the index lives, for messages: a folder or a URL."""
        ...

    def exists(self) -> bool:
        """True when the points collection exists."""
        ...

    def create(self, dim: int) -> None:
        """Create the points collection (vectors, payload indexes) and the records collection if absent."""
        ...

    def dense_size(self) -> int | None:
        """Size of the `text-dense` vector of the existing collection; None when it has no such vector."""
        ...

    def upsert(self, points: Sequence[NewPoint]) -> None: ...

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[StoredPoint]:
        """The points among `ids` that exist (any order), with payloads (and vectors when asked)."""
        ...

    def delete(self, flt: PointFilter) -> None:
        """Delete every point matching `flt` (an empty filter is refused: it would delete everything)."""
        ...

    def count(self, flt: PointFilter | None = None) -> int: ...

    def scroll(
        self,
        flt: PointFilter | None = None,
        *,
        limit: int = 1024,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[StoredPoint], str | None]:
        """A page of points in id order and the offset of the next page (None at the end)."""
        ...

    def query(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None, depth: int, rrf_k: int
    ) -> list[StoredPoint]:
        """Dense and sparse prefetches (`depth` each) fused by reciprocal rank (Qdrant's `Rrf(k=rrf_k)`,
        ranks from 0), equal scores in id order (`fused_order`); dense only when `sparse` is None or empty."""
        ...

    def query_each(
        self, dense: list[float], sparse: Sparse | None, *, limit: int, flt: PointFilter | None
    ) -> list[list[StoredPoint]]:
        """The ranked points of each retriever apart: [dense] or [dense, sparse]."""
        ...

    def put_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Write file records (JSON-safe dicts keyed by their `file_path`), creating their collection if absent
        (a file can fail, and be recorded, before the points collection exists)."""
        ...

    def get_record(self, file_path: str) -> dict[str, Any] | None: ...

    def records(self) -> dict[str, dict[str, Any]]:
        """Every file record, by file path."""
        ...

    def delete_record(self, file_path: str) -> None: ...

    def optimize(self) -> None:
        """Build indexes after a bulk load (Edge); a no-op where the engine does it itself."""
        ...

    def close(self) -> None: ...


def fused_order(points: Sequence[StoredPoint], limit: int) -> list[StoredPoint]:
    """The best `limit` of fused candidates, equal scores in id order.

    RRF gives many exact ties (dense rank i + sparse rank j scores the same as j + i) and Qdrant sorts them in
    hash order, which changes between runs; engines fetch every fused candidate and cut here instead, so a
    query returns the same points in the same order on every run and on both engines.
    """
    return sorted(points, key=lambda p: (-p.score, p.id))[:limit]


def record_id(file_path: str) -> str:
    """The point id of a file record."""
    return str(uuid.uuid5(NAMESPACE, f"record:{file_path}"))
