"""Search the collection: hybrid dense + BM25 with reciprocal-rank fusion, filters, and grouping by page.

Both retrievers run as Qdrant queries with the same filter, in one batch request (`QdrantStore.query_each`),
and their ranked lists are fused here by weighted reciprocal rank:

- chunks: score(chunk) = sum over retrievers of weight / (RRF_K + rank), weight 1 for dense and
  SPARSE_WEIGHT for BM25 (Qdrant's own weighted RRF scales ranks, not scores, which cannot express this).
- pages (`group_by_page`): a page is the pair (file, page), which Qdrant cannot group on: each
  retriever ranks pages by their best chunk and those page ranks are fused the same way. When a chunk
  of another kind on the same page also matches (the page text and one of its figures), a share of its
  fused score is added (`CROSS_KIND_WEIGHT`): two views of a page that agree are better evidence than
  one. A second text chunk earns nothing: neighbouring text chunks overlap, and rewarding them only
  favours long pages. The hit shown for a page is its best chunk.
- pages named in the query ("the map on page 12"): both retrievers also run on those pages alone, and
  their lists join the fusion (`named_pages`); pages chosen by a filter take precedence.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from caprl_index.config import Settings
from caprl_index.embedding import Embedder, open_embedder
from caprl_index.embedding.query import open_query_encoder
from caprl_index.store import PointFilter, QdrantStore, StoredPoint
from caprl_index.store.sparse import query_vector

# Fusion constant, ranks counted from 1 (Qdrant counts from 0, so its `Rrf(k=)` is RRF_K + 1: same scores).
# Small: the top of each list counts most. On the MMLongBench dev set it beat
# the textbook 60 for both pipelines (MRR, page level: text-only 0.48 vs 0.42, default 0.55 vs 0.50).
RRF_K = 2
# BM25's weight in the fusion. Figure text is labels, numbers and OCR lines, where MiniLM's sentence embedding
# is weakest and exact terms decide: on the dev set the gold page was often BM25's first and dense's fifth
# (or twentieth). Chosen on that same set (MRR 0.567 -> 0.607); over 200 random halves, the weight picked on one
# half raised MRR on the other in 82% and 92% of them, on two differently built indexes.
SPARSE_WEIGHT = 2.0
PREFETCH = 100  # candidates per retriever (more for large k)
CROSS_KIND_WEIGHT = 0.5  # share of the best chunk of another kind added to a page's score
# "page 12", "p. 12", "pages 3-5", "slide 4" in a query: the same query also runs on those pages alone and its
# lists join the fusion. A hint, not a filter: the number may be a printed page label, or another file's page.
_PAGE_WORDS = re.compile(r"\b(?:pages?|pp?\.|slides?)\s*(\d{1,5})(?:\s*(?:-|–|to)\s*(\d{1,5}))?\b", re.I)
MAX_NAMED_PAGES = 20
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Hit:
    """One search result with its provenance; `as_json()` is an object of `search --json` (design order)."""

    id: str
    score: float
    file_path: str
    file_name: str
    page: int
    page_width: float | None
    page_height: float | None
    kind: str
    figure_type: str | None
    bbox: list[float] | None
    caption_source: str | None
    caption_model: str | None
    image_uri: str | None
    page_image_uri: str | None
    text: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def page_key(self) -> tuple[str, int]:
        return self.file_path, self.page


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
        # Queries: the NumPy encoder when it can run the configured model (same vectors, no torch import).
        self.embedder = embedder or open_query_encoder(settings) or open_embedder(settings)
        self.store = store or QdrantStore(settings, create=False)

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        group_by_page: bool = False,
        hybrid: bool = True,
    ) -> list[Hit]:
        """Top-k chunks, or with `group_by_page` the top-k pages (each shown by its best chunk)."""
        flt = self.point_filter(filters or SearchFilters())
        if isinstance(flt, bool):
            return []  # no file matches the glob
        return self.search_filtered(query, k=k, flt=flt, group_by_page=group_by_page, hybrid=hybrid)

    def search_filtered(
        self, query: str, *, k: int = 10, flt: PointFilter | None, group_by_page: bool = False, hybrid: bool = True
    ) -> list[Hit]:
        """`search` with the store filter already built (LlamaIndex's MetadataFilters arrive as one)."""
        if not self.store.exists():
            return []
        depth = max(PREFETCH, 10 * k if group_by_page else 4 * k)
        dense, sparse = self.embedder.embed([query])[0], query_vector(query)
        ranked = [
            [_hit(p) for p in points]
            for points in self.store.query_each(dense, sparse, limit=depth, flt=flt, hybrid=hybrid)
        ]
        on_pages = self._on_named_pages(query, dense, sparse, flt=flt, depth=depth, hybrid=hybrid)
        weights = retriever_weights(len(ranked)) + retriever_weights(len(on_pages))
        if group_by_page:
            return fuse_pages(ranked + on_pages, weights)[:k]
        # The chunks of one long figure show as one hit (`one_per_figure`).
        return one_per_figure(fuse_chunks(ranked + on_pages, weights))[:k]

    def _on_named_pages(
        self, query: str, dense: list[float], sparse: Any, *, flt: PointFilter | None, depth: int, hybrid: bool
    ) -> list[list[Hit]]:
        """The ranked lists of the query run on the pages it names (none when it names none, or when the
        caller already chose pages)."""
        pages = named_pages(query)
        if not pages or (flt is not None and (flt.page_from is not None or flt.page_to is not None)):
            return []
        on = replace(flt or PointFilter(), page_from=min(pages), page_to=max(pages))
        ranked = self.store.query_each(dense, sparse, limit=depth, flt=on, hybrid=hybrid)
        return [[_hit(p) for p in points if p.payload.get("page") in pages] for points in ranked]

    def point_filter(self, f: SearchFilters) -> PointFilter | bool | None:
        """The store filter for `f`; False when no file matches the glob (nothing can match)."""
        paths: tuple[str, ...] | None = None
        if f.file_glob:
            paths = tuple(p for p in self.store.records() if _glob_match(p, f.file_glob))
            if not paths:
                return False
        flt = PointFilter(
            kinds=(f.kind,) if f.kind else None, file_paths=paths, page_from=f.page_from, page_to=f.page_to
        )
        return None if flt.empty else flt

    def close(self) -> None:
        self.store.close()


def named_pages(query: str) -> frozenset[int]:
    """The page numbers a query names ("on page 12", "pages 3-5", "slide 4"); ranges of at most
    MAX_NAMED_PAGES pages."""
    pages: set[int] = set()
    for m in _PAGE_WORDS.finditer(query):
        first = int(m[1])
        last = int(m[2]) if m[2] else first
        if first < 1:
            continue
        pages.update(range(first, last + 1) if first <= last < first + MAX_NAMED_PAGES else (first,))
    return frozenset(pages)


def one_per_figure(hits: Sequence[Hit]) -> list[Hit]:
    """Hits with each figure shown once, by its best chunk: a figure longer than the embedding window is
    several chunks (same file, page, kind and box) that would otherwise take several top ranks."""
    seen: set[object] = set()
    out = []
    for hit in hits:
        key: object = hit.id if hit.kind == "text" else (hit.file_path, hit.page, hit.kind, tuple(hit.bbox or ()))
        if key not in seen:
            seen.add(key)
            out.append(hit)
    return out


def retriever_weights(lists: int) -> list[float]:
    """Fusion weights of `query_each`'s lists: [dense] or [dense, BM25]."""
    return [1.0, SPARSE_WEIGHT][:lists]


def rrf_scores(ranked: Sequence[Sequence[K]], weights: Sequence[float] | None = None) -> dict[K, float]:
    """Weighted reciprocal-rank fusion of ranked key lists: sum of weight / (RRF_K + rank), ranks from 1."""
    scores: dict[K, float] = {}
    for weight, ids in zip(weights or [1.0] * len(ranked), ranked, strict=True):
        for rank, key in enumerate(ids, 1):
            scores[key] = scores.get(key, 0.0) + weight / (RRF_K + rank)
    return scores


def fuse_chunks(ranked: Sequence[Sequence[Hit]], weights: Sequence[float] | None = None) -> list[Hit]:
    """Reciprocal-rank fusion of chunk lists (equal scores in id order); a hit's score becomes its fused score."""
    if len(ranked) == 1:
        return list(ranked[0])
    first = {hit.id: hit for hits in reversed(ranked) for hit in reversed(hits)}
    scores = rrf_scores([[h.id for h in hits] for hits in ranked], weights)
    order = sorted(scores, key=lambda i: (-scores[i], i))
    return [replace(first[i], score=scores[i]) for i in order]


def fuse_pages(ranked: Sequence[Sequence[Hit]], weights: Sequence[float] | None = None) -> list[Hit]:
    """Pages ranked by fused page ranks plus a share of their best chunk of another kind; best chunk shown."""
    chunks_of: dict[tuple[str, int], list[Hit]] = {}
    for hit in fuse_chunks(ranked, weights):
        chunks_of.setdefault(hit.page_key, []).append(hit)
    # Each list ranks pages by their best chunk in it.
    scores = rrf_scores([list(dict.fromkeys(h.page_key for h in hits)) for hits in ranked], weights)
    if len(ranked) > 1:
        for key, hits in chunks_of.items():
            other = next((h for h in hits[1:] if h.kind != hits[0].kind), None)
            if other is not None:
                scores[key] += CROSS_KIND_WEIGHT * other.score
    order = sorted(scores, key=lambda key: -scores[key])
    return [replace(chunks_of[key][0], score=scores[key]) for key in order]


def _glob_match(path: str, pattern: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, f"*{pattern}")


def _hit(point: StoredPoint) -> Hit:
    p = point.payload
    return Hit(
        id=point.id,
        score=float(point.score),
        file_path=p.get("file_path", ""),
        file_name=p.get("file_name", ""),
        page=int(p.get("page", 0)),
        page_width=p.get("page_width"),
        page_height=p.get("page_height"),
        kind=p.get("kind", ""),
        figure_type=p.get("figure_type"),
        bbox=p.get("bbox"),
        caption_source=p.get("caption_source"),
        caption_model=p.get("caption_model"),
        image_uri=p.get("image_uri"),
        page_image_uri=p.get("page_image_uri"),
        text=p.get("text", ""),
    )
