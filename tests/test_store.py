"""Payload contract, deterministic ids, crash-safe replacement and hybrid queries on the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from caprl_index.config import Settings
from caprl_index.errors import StoreError
from caprl_index.models import Caption, Chunk, Figure, Page, SourceFile
from caprl_index.store import FileRecord, NewPoint, PointFilter, QdrantStore, payload, point_id
from caprl_index.store.sparse import document_vector, query_vector, tokenize

CONTRACT_KEYS = {
    "text", "file_path", "file_name", "file_sha256", "page", "page_count", "kind", "figure_type", "bbox",
    "page_width", "page_height", "caption_source", "caption_model", "prompt_version", "image_sha256",
    "chunk_index", "_node_content", "_node_type", "doc_id", "document_id", "ref_doc_id",
}  # fmt: skip

SRC = SourceFile(path="/data/report.pdf", sha256="ab" * 32, size=10)
PAGE = Page(number=2, width=595.0, height=842.0, text="Revenue grew in every region.")
FIG = Figure(
    kind="figure", figure_type="chart", bbox=(50, 100, 400, 380), image=b"png", mime="image/png",
    image_sha256="cd" * 32, region_index=0, printed_caption="Figure 1: Revenue by region",
)  # fmt: skip
CAP = Caption(text="A bar chart of revenue by region.", source="vllm", model="caprl", prompt_version="p1")


def text_chunk(i: int = 0, src: SourceFile = SRC, text: str = "Revenue grew in every region.") -> Chunk:
    return Chunk(text=text, file=src, page_count=5, page=PAGE, kind="text", chunk_index=i)


def figure_chunk() -> Chunk:
    return Chunk(text="Figure 1 ...", file=SRC, page_count=5, page=PAGE, kind="figure", chunk_index=0,
                 figure=FIG, caption=CAP, region_index=0)  # fmt: skip


def test_payload_has_every_contract_key_and_llamaindex_fields() -> None:
    p = payload(figure_chunk())
    assert set(p) >= CONTRACT_KEYS
    assert p["page"] == 2 and p["kind"] == "figure" and p["figure_type"] == "chart"
    assert p["bbox"] == [50, 100, 400, 380]
    assert p["caption_source"] == "vllm" and p["caption_model"] == "caprl" and p["prompt_version"] == "p1"
    assert p["_node_type"] == "TextNode" and p["doc_id"] == p["ref_doc_id"] == p["document_id"] != "None"

    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    node = metadata_dict_to_node(p)
    assert node.get_content() == "Figure 1 ..."
    assert node.metadata["page"] == 2 and node.node_id == point_id(figure_chunk())


def test_text_points_have_null_figure_fields() -> None:
    p = payload(text_chunk())
    assert p["kind"] == "text" and p["figure_type"] is None and p["bbox"] is None
    assert p["caption_source"] is None and p["image_sha256"] is None


def test_point_ids_are_deterministic_and_distinct() -> None:
    assert point_id(text_chunk(0)) == point_id(text_chunk(0))
    assert point_id(text_chunk(0)) != point_id(text_chunk(1))
    copy = SourceFile(path="/other/report.pdf", sha256=SRC.sha256, size=10)
    assert point_id(text_chunk(0, copy)) != point_id(text_chunk(0))  # two copies of one file stay apart


def test_sparse_vectors_score_shared_terms() -> None:
    assert tokenize("The Prices of Batteries") == ["price", "batterie"]
    d_idx, d_val = document_vector("battery prices fell; battery prices rose")
    q_idx, _ = query_vector("battery prices")
    assert set(q_idx) <= set(d_idx) and all(v > 0 for v in d_val)
    assert document_vector("") == ([], [])


@pytest.fixture
def store(tmp_path: Path) -> QdrantStore:
    s = QdrantStore(Settings(qdrant_path=tmp_path / "q", collection="t"))
    s.ensure_collection(4)
    yield s
    s.close()


def _points(chunks: list[Chunk], vec: list[float]) -> list[NewPoint]:
    return [NewPoint(point_id(c), vec, document_vector(c.text), payload(c)) for c in chunks]


def test_replace_file_deletes_only_stale_points(store: QdrantStore) -> None:
    other = SourceFile(path="/data/other.pdf", sha256="ef" * 32, size=1)
    store.upsert(_points([text_chunk(0), text_chunk(1), text_chunk(0, other)], [1, 0, 0, 0]))
    store.upsert(_points([text_chunk(1), text_chunk(2)], [1, 0, 0, 0]))  # new version: chunks 1 and 2
    store.delete_stale(SRC.path, [point_id(text_chunk(1)), point_id(text_chunk(2))])
    assert store.count(PointFilter(file_paths=(SRC.path,))) == 2
    assert store.count(PointFilter(file_paths=(other.path,))) == 1  # another file is never touched


def test_records_roundtrip_and_delete_file(store: QdrantStore) -> None:
    store.upsert(_points([text_chunk(0)], [0, 1, 0, 0]))
    store.put_record(FileRecord(file_path=SRC.path, file_sha256=SRC.sha256, complete=True, points=1))
    assert store.records()[SRC.path].file_sha256 == SRC.sha256
    store.delete_file(SRC.path)
    assert store.count() == 0 and store.records() == {}


def test_stored_vectors_are_reused(store: QdrantStore) -> None:
    store.upsert(_points([text_chunk(0)], [0, 0, 1, 0]))
    found = store.stored_vectors([point_id(text_chunk(0)), point_id(text_chunk(9))])
    assert list(found) == [point_id(text_chunk(0))]
    text, vec = found[point_id(text_chunk(0))]
    assert text == text_chunk(0).text and vec == pytest.approx([0, 0, 1, 0])


def test_hybrid_query_finds_keyword_match(store: QdrantStore) -> None:
    a = text_chunk(0, text="quarterly revenue by region")
    b = text_chunk(1, text="employee headcount and office locations")
    store.upsert(_points([a], [1, 0, 0, 0]) + _points([b], [0.9, 0.1, 0, 0]))
    hits = store.query([0.9, 0.1, 0, 0], query_vector("headcount"), limit=2)
    assert hits[0].payload["text"] == b.text
    hits = store.query([1, 0, 0, 0], query_vector("revenue region"), limit=2)
    assert hits[0].payload["text"] == a.text


def test_dimension_mismatch_is_a_clear_error(store: QdrantStore) -> None:
    with pytest.raises(StoreError, match=r"384-d|4-d vectors"):
        store.ensure_collection(384)


def test_locked_folder_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(qdrant_path=tmp_path / "q")
    first = QdrantStore(settings)
    first.engine  # noqa: B018 - opens and locks the folder
    try:
        with pytest.raises(StoreError, match="already open in this process"):
            QdrantStore(settings).engine  # noqa: B018 (another process: tests/test_store_engines.py)
    finally:
        first.close()
