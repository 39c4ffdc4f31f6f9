"""Hybrid search on a small real collection: ranking, filters (kind, file, pages) and grouping by page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from caprl_index.config import Settings
from caprl_index.models import Caption, Chunk, Figure, Page, SourceFile
from caprl_index.search import (
    PREFETCH,
    RRF_K,
    SPARSE_WEIGHT,
    Hit,
    Searcher,
    SearchFilters,
    _hit,
    fuse_chunks,
    fuse_pages,
    named_pages,
    one_per_figure,
)
from caprl_index.store import FileRecord, NewPoint, QdrantStore, payload, point_id
from caprl_index.store.sparse import document_vector, query_vector

# (file name, page, kind, text): two reports and a deck, a few pages each.
CORPUS: list[tuple[str, int, str, str]] = [
    ("energy-report.pdf", 1, "text", "Annual energy report. This report reviews electricity generation in 2023."),
    ("energy-report.pdf", 2, "text", "Solar and wind capacity grew quickly while coal plants were retired."),
    ("energy-report.pdf", 2, "figure", "Figure 1: Installed solar capacity by year, in gigawatts, 2015 to 2023."),
    ("energy-report.pdf", 3, "text", "Battery storage prices fell by half; grid operators bought more batteries."),
    ("energy-report.pdf", 4, "text", "Appendix: methodology and the survey questionnaire sent to utilities."),
    ("energy-report.pdf", 4, "text", "The questionnaire was sent to 412 utilities; 390 of them answered it."),
    ("health-survey.pdf", 1, "text", "National health survey of adults: smoking, diet and physical activity."),
    ("health-survey.pdf", 2, "figure", "Chart: share of adults who smoke daily, by age group and sex."),
    ("health-survey.pdf", 3, "text", "Children's vaccination coverage reached 94 percent in rural districts."),
    ("health-survey.pdf", 5, "text", "Model XJ-9000 spirometers measured lung function at every clinic."),
    ("product-deck.pptx", 1, "page", "Product roadmap: launch of the mobile banking app in spring."),
    ("product-deck.pptx", 2, "page", "Quarterly revenue by region: Europe, Asia and the Americas."),
]


def source(folder: Path, name: str) -> SourceFile:
    return SourceFile(path=str(folder / name), sha256=name.encode().hex().ljust(64, "0")[:64], size=1)


def corpus_chunks(folder: Path) -> list[Chunk]:
    out = []
    for i, (name, number, kind, text) in enumerate(CORPUS):
        figure = caption = None
        if kind != "text":
            whole = kind == "page"
            figure = Figure(
                kind=kind,  # type: ignore[arg-type]
                figure_type="slide" if whole else "chart",
                bbox=(0, 0, 595, 842) if whole else (50, 100, 400, 380),
                image=b"png", mime="image/png", image_sha256=f"{i:064x}", region_index=0, ocr_text=text,
            )  # fmt: skip
            caption = Caption(text=text, source="ocr")
        page = Page(number=number, width=595, height=842, text=text if kind == "text" else "")
        out.append(
            Chunk(
                text=text,
                file=source(folder, name),
                page_count=5,
                page=page,
                kind=kind,  # type: ignore[arg-type]
                chunk_index=i,
                figure=figure,
                caption=caption,
                region_index=0 if figure else -1,
            )
        )
    return out


def build_collection(settings: Settings, embedder, folder: Path) -> None:
    """Embed and store CORPUS as if `folder` held its files (what `ingest` writes, without parsing)."""
    chunks = corpus_chunks(folder)
    vectors = embedder.embed([c.text for c in chunks])
    store = QdrantStore(settings)
    try:
        store.ensure_collection(embedder.dim)
        store.upsert(
            [
                NewPoint(point_id(c), v, document_vector(c.text), payload(c))
                for c, v in zip(chunks, vectors, strict=True)
            ]
        )
        for name in sorted({c.file.name for c in chunks}):
            src = source(folder, name)
            store.put_record(FileRecord(file_path=src.path, file_sha256=src.sha256, complete=True))
    finally:
        store.close()


def corpus_searcher(embedder, root: Path, collection: str) -> Iterator[Searcher]:
    """A Searcher over CORPUS stored under `root` (module fixtures of the search and eval tests)."""
    settings = Settings(qdrant_path=root / "qdrant", collection=collection)
    build_collection(settings, embedder, root / "docs")
    s = Searcher(settings, embedder=embedder)
    yield s
    s.close()


@pytest.fixture(scope="module")
def searcher(embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    yield from corpus_searcher(embedder, tmp_path_factory.mktemp("search"), "search-test")


def where(hit) -> tuple[str, int, str]:
    return hit.file_name, hit.page, hit.kind


def test_semantic_query_finds_the_right_page(searcher: Searcher) -> None:
    hits = searcher.search("how cheap have batteries become", k=3)
    assert where(hits[0]) == ("energy-report.pdf", 3, "text")
    hits = searcher.search("tobacco use among grown-ups", k=3)
    assert hits[0].file_name == "health-survey.pdf" and hits[0].page in (1, 2)


def test_rare_keyword_is_found_by_bm25(searcher: Searcher) -> None:
    hits = searcher.search("XJ-9000", k=3)
    assert where(hits[0]) == ("health-survey.pdf", 5, "text")


def test_hits_carry_provenance_and_scores_descend(searcher: Searcher) -> None:
    hits = searcher.search("solar capacity chart", k=5)
    fig = next(h for h in hits if h.kind == "figure")
    assert fig.bbox == [50, 100, 400, 380] and fig.figure_type == "chart" and fig.caption_source == "ocr"
    assert fig.file_path.endswith("/docs/energy-report.pdf") and fig.id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dense_only_search_still_ranks(searcher: Searcher) -> None:
    hits = searcher.search("revenue by region", k=2, hybrid=False)
    assert where(hits[0]) == ("product-deck.pptx", 2, "page")


def test_kind_filter(searcher: Searcher) -> None:
    hits = searcher.search("solar capacity", k=10, filters=SearchFilters(kind="figure"))
    assert hits and {h.kind for h in hits} == {"figure"}
    assert where(hits[0]) == ("energy-report.pdf", 2, "figure")
    assert {h.kind for h in searcher.search("revenue", filters=SearchFilters(kind="page"))} == {"page"}


def test_file_glob_filter_matches_name_or_path(searcher: Searcher) -> None:
    hits = searcher.search("revenue by region", k=10, filters=SearchFilters(file_glob="*.pdf"))
    assert hits and all(h.file_name.endswith(".pdf") for h in hits)
    hits = searcher.search("survey", k=10, filters=SearchFilters(file_glob="health-*"))
    assert hits and {h.file_name for h in hits} == {"health-survey.pdf"}
    assert searcher.search("survey", filters=SearchFilters(file_glob="nothing-like-this*")) == []


def test_page_range_filter(searcher: Searcher) -> None:
    hits = searcher.search("survey questionnaire", k=10, filters=SearchFilters(page_from=2, page_to=3))
    assert hits and all(2 <= h.page <= 3 for h in hits)
    hits = searcher.search("survey", k=10, filters=SearchFilters(page_from=5))
    assert hits and {h.page for h in hits} == {5}


def test_a_page_named_in_the_query_is_searched_too(searcher: Searcher) -> None:
    """ "on page 5" runs the query on page 5 as well and fuses it in: a hint, not a filter."""
    for grouped in (False, True):
        plain = searcher.search("tobacco use among grown-ups", k=10, group_by_page=grouped)
        assert [h.page for h in plain].index(5) >= 3  # page 5 is about spirometers, not smoking
        hinted = searcher.search("tobacco use among grown-ups on page 5", k=10, group_by_page=grouped)
        assert where(hinted[0]) == ("health-survey.pdf", 5, "text")
        assert {h.page for h in hinted} != {5}  # other pages still come
    chosen = searcher.search("survey on page 3", k=10, filters=SearchFilters(page_from=5))
    assert {h.page for h in chosen} == {5}  # pages the caller chose win over the words


def test_named_pages_reads_page_and_slide_numbers() -> None:
    assert named_pages("In the picture on page 50, what time does it start?") == {50}
    assert named_pages("the map of Page 12") == {12}
    assert named_pages("pages 3-5 and slide 9") == {3, 4, 5, 9}
    assert named_pages("see pp. 10 to 12, or p. 7") == {7, 10, 11, 12}
    assert named_pages("pages 5-900") == {5}  # a range too wide to mean anything: its first page
    assert named_pages("page 0 of the page count") == frozenset()


def test_group_by_page_returns_each_page_once_with_its_best_chunk(searcher: Searcher) -> None:
    plain = searcher.search("questionnaire sent to utilities", k=10)
    assert [where(h) for h in plain[:2]].count(("energy-report.pdf", 4, "text")) == 2  # two chunks, one page
    grouped = searcher.search("questionnaire sent to utilities", k=10, group_by_page=True)
    pages = [(h.file_path, h.page) for h in grouped]
    assert len(pages) == len(set(pages))
    assert where(grouped[0]) == ("energy-report.pdf", 4, "text")
    assert "questionnaire" in grouped[0].text
    # The page that has both page text and a figure about solar shows up once.
    solar = searcher.search("solar capacity", k=10, group_by_page=True)
    assert [(h.file_name, h.page) for h in solar].count(("energy-report.pdf", 2)) == 1
    assert len(searcher.search("report", k=3, group_by_page=True)) == 3


def hit(page: int, kind: str, n: int) -> Hit:
    return Hit(
        id=f"{n}", score=0.0, file_path="/d/r.pdf", file_name="r.pdf", page=page, page_width=612, page_height=792,
        kind=kind, figure_type=None, bbox=None, caption_source=None, caption_model=None, image_uri=None,
        page_image_uri=None, text="",
    )  # fmt: skip


def test_page_fusion_rewards_a_page_whose_text_and_figure_both_match() -> None:
    # Page 1 has two matching text chunks, page 2 a matching text chunk and a matching figure, ranked alike.
    dense = [hit(1, "text", 1), hit(2, "text", 3), hit(1, "text", 2), hit(2, "figure", 4)]
    sparse = [hit(2, "text", 3), hit(1, "text", 1), hit(2, "figure", 4), hit(1, "text", 2)]
    pages = fuse_pages([dense, sparse])
    assert [h.page for h in pages] == [2, 1]
    assert pages[0].id == "3" and pages[0].score > pages[1].score  # shown by its best chunk
    # Without the figure, the tie between the pages stays a tie: a second text chunk earns nothing.
    plain = fuse_pages([[h for h in dense if h.kind == "text"], [h for h in sparse if h.kind == "text"]])
    assert plain[0].score == pytest.approx(plain[1].score)


def test_a_long_figures_chunks_show_as_one_hit() -> None:
    def figure(id: str, box: list[float], text: str) -> Hit:
        return replace(hit(2, "figure", 0), id=id, figure_type="chart", bbox=box, text=text)

    box = [10.0, 20.0, 300.0, 400.0]
    first, second = (figure(f"f{i}", box, f"part {i}") for i in (0, 1))
    other = figure("g", [10.0, 420.0, 300.0, 700.0], "")
    texts = [hit(2, "text", 7), hit(2, "text", 8)]  # neighbouring text chunks are different content
    assert [h.id for h in one_per_figure([first, *texts, second, other])] == ["f0", "7", "8", "g"]


def test_chunk_fusion_is_reciprocal_rank() -> None:
    a, b, c = hit(1, "text", 1), hit(2, "text", 2), hit(3, "figure", 3)
    fused = fuse_chunks([[a, b], [b, c]])
    assert [h.id for h in fused] == ["2", "1", "3"]
    assert fused[0].score == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert fuse_chunks([[a, b]]) == [a, b]  # one retriever: its own scores stand
    tied = fuse_chunks([[a, b], [b, a]])
    assert [h.id for h in tied] == ["1", "2"] and tied[0].score == tied[1].score  # equal: id order
    weighted = fuse_chunks([[a, b], [b, a]], [1.0, 2.0])  # the second list counts twice: its first wins
    assert [h.id for h in weighted] == ["2", "1"]
    assert weighted[0].score == pytest.approx(1 / (RRF_K + 2) + 2 / (RRF_K + 1))


def test_bm25_matches_figure_references_as_one_term() -> None:
    from caprl_index.store.sparse import label_refs, query_vector, tokenize

    assert label_refs("Fig. 3. Comparison; see Table IV and Figure 2a") == [
        "figure 3",
        "table iv",
        "figure 2a",
        "figure 2",
    ]
    assert label_refs("tables of contents, a figure in the report") == []
    assert tokenize("The Prices of Batteries") == ["price", "batterie"]  # plain words are unchanged
    q = set(query_vector("In figure 3, how many icons?")[0])
    assert len(q & set(document_vector("Fig. 3. Icons of the pipeline")[0])) == 4  # figure, 3, icon, "figure 3"
    assert len(q & set(document_vector("Figure 13 shows 3 icons")[0])) == 3  # figure, 3, icon: no label match


def test_chunk_search_is_the_weighted_fusion_of_both_retrievers(searcher: Searcher) -> None:
    """`search` fuses the two ranked lists with BM25 weighted SPARSE_WEIGHT; unweighted, the same fusion is
    Qdrant's own RRF (constant RRF_K + 1, ranks from 0)."""
    query = "quarterly revenue growth"
    dense, sparse = searcher.embedder.embed([query])[0], query_vector(query)
    ranked = [[_hit(p) for p in points] for points in searcher.store.query_each(dense, sparse, limit=PREFETCH)]
    assert len(ranked) == 2  # dense and BM25 both ran
    expected = one_per_figure(fuse_chunks(ranked, [1.0, SPARSE_WEIGHT]))[:5]
    got = searcher.search(query, k=5)
    assert [h.id for h in got] == [h.id for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected])
    qdrant = searcher.store.query(dense, sparse, limit=5, depth=PREFETCH, rrf_k=RRF_K + 1)
    assert [p.id for p in qdrant] == [h.id for h in fuse_chunks(ranked)[:5]]
    assert [p.score for p in qdrant] == pytest.approx([h.score for h in fuse_chunks(ranked)[:5]])
