"""Reading an index back in tests and benchmarks, through the store interface (whatever the engine)."""

from __future__ import annotations

from caprl_index.config import Settings
from caprl_index.store import QdrantStore, StoredPoint


def all_points(settings: Settings, *, with_vectors: bool = False) -> list[StoredPoint]:
    """Every point of the configured collection (empty when there is none)."""
    store = QdrantStore(settings, create=False)
    try:
        if not settings.qdrant_url and not settings.qdrant_path.is_dir():
            return []
        if not store.exists():
            return []
        out: list[StoredPoint] = []
        offset: str | None = None
        while True:
            batch, offset = store.engine.scroll(limit=1024, offset=offset, with_vectors=with_vectors)
            out += batch
            if offset is None:
                return out
    finally:
        store.close()
