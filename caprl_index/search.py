"""Search the collection: hybrid dense + BM25 (Qdrant Query API, reciprocal-rank fusion), with filters."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any

from caprl_index.config import Settings
from caprl_index.embedding import Embedder, open_embedder
from caprl_index.store import QdrantStore
from caprl_index.store.sparse import query_vector


@dataclass(frozen=True)
class Hit:
    """One search result with its provenance."""

    score: float
    file_path: str
    page: int
    kind: str
    figure_type: str | None
    bbox: list[float] | None
    text: str
    file_name: str = ""
    caption_source: str | None = None
    id: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchFilters:
    kind: str | None = None  # text | figure | page
    file_glob: str | None = None  # matched against the full path and the base name
    page_from: int | None = None
    page_to: int | None = None


class Searcher:
    """Holds the store and the embedder for repeated queries (eval, REPL)."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, store: QdrantStore | None = None):
        self.settings = settings
        self.embedder = embedder or open_embedder(settings)
        self.store = store or QdrantStore(settings)

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        group_by_page: bool = False,
        hybrid: bool = True,
    ) -> list[Hit]:
        """Top-k hits; with `group_by_page`, only the best chunk of each page."""
        flt = self._filter(filters or SearchFilters())
        if flt is False:
            return []
        dense = self.embedder.embed([query])[0]
        limit = k * 6 if group_by_page else k
        points = self.store.query(dense, query_vector(query), limit=limit, flt=flt, hybrid=hybrid)
        hits = [_hit(p) for p in points]
        if group_by_page:
            hits = _best_per_page(hits)
        return hits[:k]

    def _filter(self, f: SearchFilters) -> Any:
        from qdrant_client import models as m

        must: list[Any] = []
        if f.kind:
            must.append(m.FieldCondition(key="kind", match=m.MatchValue(value=f.kind)))
        if f.page_from is not None or f.page_to is not None:
            must.append(m.FieldCondition(key="page", range=m.Range(gte=f.page_from, lte=f.page_to)))
        if f.file_glob:
            paths = [p for p in self.store.records() if _glob_match(p, f.file_glob)]
            if not paths:
                return False
            must.append(m.FieldCondition(key="file_path", match=m.MatchAny(any=paths)))
        return m.Filter(must=must) if must else None

    def close(self) -> None:
        self.store.close()


def _glob_match(path: str, pattern: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, f"*{pattern}")


def _hit(point: Any) -> Hit:
    p = point.payload or {}
    return Hit(
        score=float(point.score),
        file_path=p.get("file_path", ""),
        page=int(p.get("page", 0)),
        kind=p.get("kind", ""),
        figure_type=p.get("figure_type"),
        bbox=p.get("bbox"),
        text=p.get("text", ""),
        file_name=p.get("file_name", ""),
        caption_source=p.get("caption_source"),
        id=str(point.id),
    )


def _best_per_page(hits: list[Hit]) -> list[Hit]:
    seen: set[tuple[str, int]] = set()
    out = []
    for h in hits:
        key = (h.file_path, h.page)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out
