"""Qdrant storage for chunks and file records."""

from caprl_index.store.payload import document_id, payload, point_id
from caprl_index.store.qdrant import DENSE, SPARSE, QdrantStore

__all__ = ["DENSE", "SPARSE", "QdrantStore", "document_id", "payload", "point_id"]
