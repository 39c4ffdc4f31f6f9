"""Page-level retrieval metrics: queries JSONL parsing and recall/MRR on a small real collection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from caprl_index.errors import ConfigError
from caprl_index.evaluate import Query, evaluate, load_queries
from caprl_index.search import Searcher
from tests.test_search import corpus_searcher


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_file_paths_are_relative_to_the_jsonl_folder(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    qfile = write_jsonl(
        tmp_path / "bench" / "q.jsonl",
        [
            {"question": "a?", "file": "docs/a.pdf", "page": 3, "answer": "extra keys are fine"},
            "",
            {"question": "b?", "file": "/abs/b.pdf", "page": "2"},
        ],
    )
    assert load_queries(qfile) == [
        Query("a?", str(tmp_path / "bench" / "docs" / "a.pdf"), 3),
        Query("b?", "/abs/b.pdf", 2),
    ]


@pytest.mark.parametrize(
    "bad",
    ['{"question": "q", "file": "a.pdf"}', "not json", '{"question": "q", "file": "a.pdf", "page": "two"}', "[1]"],
)
def test_malformed_line_is_a_config_error_naming_the_line(tmp_path: Path, bad: str) -> None:
    qfile = write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "file": "a.pdf", "page": 1}, bad])
    with pytest.raises(ConfigError, match=r"q\.jsonl:2:"):
        load_queries(qfile)


def test_missing_queries_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.jsonl"):
        load_queries(tmp_path / "no-such.jsonl")


@pytest.fixture(scope="module")
def searcher(embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    yield from corpus_searcher(embedder, tmp_path_factory.mktemp("eval"), "eval-test")


def test_metrics_on_a_small_collection(searcher: Searcher, tmp_path: Path) -> None:
    docs = searcher.store.records()
    root = Path(next(iter(docs))).parent  # the folder the collection's files "live" in
    qfile = write_jsonl(
        root.parent / "queries.jsonl",
        [
            {"question": "How much did battery storage prices fall?", "file": "docs/energy-report.pdf", "page": 3},
            {"question": "Which spirometer model was used?", "file": "docs/health-survey.pdf", "page": 5},
            {"question": "What was on the product roadmap?", "file": "docs/product-deck.pptx", "page": 1},
            # A gold page the collection does not hold is never found.
            {"question": "How much did battery storage prices fall?", "file": "docs/energy-report.pdf", "page": 9},
        ],
    )
    metrics = evaluate(searcher, load_queries(qfile))
    assert metrics["ranks"][:3] == [1, 1, 1] and metrics["ranks"][3] is None
    assert metrics["n"] == 4
    assert metrics["recall@1"] == metrics["recall@5"] == metrics["recall@10"] == 0.75
    assert metrics["mrr"] == 0.75


def test_ranks_count_distinct_pages(searcher: Searcher) -> None:
    question = "questionnaire sent to utilities"
    chunks = searcher.search(question, k=10)
    assert len({(h.file_path, h.page) for h in chunks}) < len(chunks)  # page 4 has two matching chunks
    pages = [(h.file_path, h.page) for h in searcher.search(question, k=10, group_by_page=True)]
    queries = [Query(question, path, page) for path, page in pages]
    assert evaluate(searcher, queries)["ranks"] == list(range(1, len(pages) + 1))


def test_empty_query_list_gives_zeros(searcher: Searcher) -> None:
    metrics = evaluate(searcher, [])
    assert metrics["n"] == 0 and metrics["recall@1"] == 0.0 and metrics["mrr"] == 0.0
