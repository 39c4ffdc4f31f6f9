"""Qdrant storage for chunks and file records: one interface (`QdrantStore`) over the Qdrant engines."""

from caprl_index.store.engine import DENSE, SPARSE, NewPoint, PointFilter, StoredPoint
from caprl_index.store.payload import document_id, payload, point_id
from caprl_index.store.qdrant import QdrantStore
from caprl_index.store.records import FileRecord

__all__ = [
    "DENSE",
    "SPARSE",
    "FileRecord",
    "NewPoint",
    "PointFilter",
    "QdrantStore",
    "StoredPoint",
    "document_id",
    "payload",
    "point_id",
]
