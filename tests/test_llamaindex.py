"""LlamaIndex integration with real objects: the stock QdrantVectorStore over a collection the library built,
CapRLReader inside SimpleDirectoryReader and an IngestionPipeline, captions from the loopback vLLM server."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from caprl_index.config import Settings
from caprl_index.pipeline import ingest
from caprl_index.reader import CapRLEmbedding, CapRLReader
from caprl_index.store import QdrantStore
from caprl_index.store.payload import document_id
from caprl_index.store.server import ServerEngine
from caprl_index.testing.fake_vllm import FakeVLLM
from tests.conftest import EXAMPLES, free_port

REPORT = (EXAMPLES / "solar-market-report-2024.pdf").resolve()
DECK = (EXAMPLES / "quarterly-review.pptx").resolve()
QUERY = "battery storage prices by year"
PROVENANCE = {
    "file_path", "file_name", "file_sha256", "page", "page_count", "kind", "figure_type", "bbox", "page_width",
    "page_height", "caption_source", "caption_model", "prompt_version", "image_sha256", "chunk_index",
}  # fmt: skip


def offline_settings(root: Path, **kw: Any) -> Settings:
    """Settings that touch nothing outside `root` (module fixtures run before conftest's isolation)."""
    base: dict[str, Any] = {
        "qdrant_path": root / "qdrant",
        "vllm_url": f"http://127.0.0.1:{free_port()}/v1",
        "captioner": "none",
        "workers": 1,
    }
    return Settings(**(base | kw))


@pytest.fixture(scope="module")
def reader_docs(tmp_path_factory: pytest.TempPathFactory) -> list[Document]:
    """examples/docs' PDFs and deck through SimpleDirectoryReader with CapRLReader as the extractor."""
    with CapRLReader(offline_settings(tmp_path_factory.mktemp("reader"))) as reader:
        sdr = SimpleDirectoryReader(
            str(EXAMPLES), file_extractor={".pdf": reader, ".pptx": reader}, raise_on_error=True
        )
        return sdr.load_data()


def test_stock_qdrant_vector_store_reads_cli_collection(embedder: Any, tmp_path: Path) -> None:
    settings = offline_settings(tmp_path)
    # A server-mode collection (qdrant-client's local mode stands in for the server here).
    server = QdrantStore(settings, engine=ServerEngine(QdrantClient(path=str(settings.qdrant_path)), "caprl"))
    stats = ingest([REPORT], settings, embedder=embedder, store=server)
    assert stats.files_indexed == 1 and stats.figures >= 3

    client = QdrantClient(path=str(settings.qdrant_path))
    try:
        store = QdrantVectorStore(client=client, collection_name=settings.collection)
        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(embedder=embedder))
        hits = index.as_retriever(similarity_top_k=5).retrieve(QUERY)
        top = hits[0].node
        assert top.metadata["page"] == 3
        assert top.metadata["file_path"] == str(REPORT)
        assert top.ref_doc_id == document_id(str(REPORT))
        for hit in hits:
            meta = hit.node.metadata
            assert set(meta) >= PROVENANCE
            assert (meta["bbox"] is not None) == (meta["kind"] != "text")
        [point] = client.retrieve(settings.collection, [top.node_id], with_payload=True)
        assert point.payload is not None and top.get_content() == point.payload["text"]

        # Top-level payload keys work as LlamaIndex metadata filters on the stock store.
        figures_only = MetadataFilters(filters=[MetadataFilter(key="kind", value="figure")])
        found = index.as_retriever(similarity_top_k=3, filters=figures_only).retrieve(QUERY)
        assert found and all(h.node.metadata["kind"] == "figure" for h in found)
        figure = found[0].node.metadata
        assert figure["page"] == 3 and figure["figure_type"] == "chart"
        x0, y0, x1, y1 = figure["bbox"]
        assert 0 <= x0 < x1 <= figure["page_width"] and 0 <= y0 < y1 <= figure["page_height"]
    finally:
        client.close()


def test_reader_documents_per_page_text_and_figure(reader_docs: list[Document]) -> None:
    by_file: dict[str, list[Document]] = {}
    for doc in reader_docs:
        assert set(doc.metadata) >= PROVENANCE, doc.metadata.keys()
        by_file.setdefault(doc.metadata["file_name"], []).append(doc)
    assert set(by_file) == {"solar-market-report-2024.pdf", "city-transit-infographic.pdf", "quarterly-review.pptx"}

    report = by_file["solar-market-report-2024.pdf"]
    assert sorted(d.metadata["page"] for d in report if d.metadata["kind"] == "text") == [1, 2, 3, 4, 5]
    chart = next(d for d in report if d.metadata["kind"] == "figure" and d.metadata["page"] == 3)
    assert chart.metadata["figure_type"] == "chart" and len(chart.metadata["bbox"]) == 4
    assert chart.metadata["caption_source"] == "none" and "Figure 2" in chart.text
    assert chart.metadata["page_count"] == 5 and len(chart.metadata["image_sha256"]) == 64

    # Our provenance wins over SimpleDirectoryReader's; its other keys are kept.
    assert chart.metadata["file_path"] == str(REPORT)
    assert chart.metadata["file_type"] == "application/pdf" and chart.metadata["file_size"] > 0
    # Hidden keys stay out of what is embedded; the page number stays in.
    embedded = chart.get_content(metadata_mode="embed")  # type: ignore[arg-type]
    assert "page: 3" in embedded and "file_sha256" not in embedded and "bbox" not in embedded

    slides = [d for d in by_file["quarterly-review.pptx"] if d.metadata["kind"] == "page"]
    assert [d.metadata["page"] for d in slides] == [1, 2, 3, 4, 5]
    assert all(d.metadata["figure_type"] == "slide" and d.metadata["file_path"] == str(DECK) for d in slides)
    assert len({d.id_ for d in reader_docs}) == len(reader_docs)


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_ingestion_pipeline_keeps_provenance(reader_docs: list[Document], embedder: Any, tmp_path: Path) -> None:
    docs = [d for d in reader_docs if d.metadata["file_name"] == "solar-market-report-2024.pdf"]
    client = QdrantClient(path=str(tmp_path / "pipeline"))
    try:
        store = QdrantVectorStore(client=client, collection_name="from-reader")
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=96, chunk_overlap=8), CapRLEmbedding(embedder=embedder)],
            vector_store=store,
        )
        nodes = pipeline.run(documents=docs)
        assert len(nodes) > len(docs)  # split, and every piece still knows where it came from
        source = {d.id_: d for d in docs}
        for node in nodes:
            parent = source[node.ref_doc_id]  # type: ignore[index]
            assert {k: node.metadata[k] for k in PROVENANCE} == {k: parent.metadata[k] for k in PROVENANCE}
            assert node.embedding is not None and len(node.embedding) == 384

        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(embedder=embedder))
        on_page_3 = MetadataFilters(filters=[MetadataFilter(key="page", value=3, operator=FilterOperator.EQ)])
        hits = index.as_retriever(similarity_top_k=2, filters=on_page_3).retrieve(QUERY)
        assert hits and all(h.node.metadata["page"] == 3 for h in hits)
        assert index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0].node.metadata["page"] == 3
    finally:
        client.close()


class CountingVLLM(FakeVLLM):
    """The loopback vLLM, counting `GET /v1/models` (the captioner's availability probe)."""

    probes = 0

    def models_body(self) -> dict[str, Any]:
        self.probes += 1
        return super().models_body()


def test_reader_captions_with_vllm_probing_once_per_reader(tmp_path: Path) -> None:
    server = CountingVLLM(model="caprl")
    with server:
        settings = offline_settings(tmp_path, vllm_url=server.url, captioner="auto")
        with CapRLReader(settings) as reader:
            first = reader.load_data(REPORT)
            again = reader.load_data(REPORT)
        assert server.probes == 1  # one captioner for every file (and every page batch) the reader loads
        figures = [d for d in first if d.metadata["kind"] == "figure"]
        # Each distinct image captioned once; the second read is served by the caption cache.
        assert len(server.chat_requests) == len({d.metadata["image_sha256"] for d in figures}) >= 3
    assert reader.warnings == []
    for doc in figures:
        assert doc.metadata["caption_source"] == "vllm"
        assert doc.metadata["caption_model"] == "caprl" and doc.metadata["prompt_version"]
    assert [(d.id_, d.text) for d in again] == [(d.id_, d.text) for d in first]


def test_reader_falls_back_to_ocr_text_and_says_so(tmp_path: Path) -> None:
    settings = offline_settings(tmp_path, captioner="auto")  # nothing listens at vllm_url
    with CapRLReader(settings) as reader:
        docs = reader.load_data(REPORT, extra_info={"collection": "reports", "file_path": "relative.pdf"})
    assert len(reader.warnings) == 1 and "vLLM is not serving" in reader.warnings[0]
    figures = [d for d in docs if d.metadata["kind"] == "figure"]
    assert figures and all(d.metadata["caption_source"] == "ocr" for d in figures)
    assert all(d.metadata["collection"] == "reports" and d.metadata["file_path"] == str(REPORT) for d in docs)
    # Stable ids: the same file read again gives the same Documents (IngestionPipeline's docstore dedups),
    # also when called under a running event loop (Jupyter) and after a pickle trip (SimpleDirectoryReader's
    # num_workers sends extractors to worker processes).
    again = pickle.loads(pickle.dumps(CapRLReader(settings, captioner="ocr")))

    async def in_a_running_loop() -> list[Document]:
        return again.load_data(REPORT)

    try:
        assert [d.id_ for d in asyncio.run(in_a_running_loop())] == [d.id_ for d in docs]
    finally:
        again.close()


def test_reader_reads_through_an_fsspec_filesystem(tmp_path: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/reports/solar.pdf", REPORT.read_bytes())
    try:
        with CapRLReader(offline_settings(tmp_path)) as reader:
            extractor: dict[str, Any] = {".pdf": reader}
            docs = SimpleDirectoryReader("/bucket/reports", fs=memory, file_extractor=extractor).load_data()
            local = reader.load_data(REPORT)
    finally:
        memory.rm("/bucket", recursive=True)
    # The remote path is the provenance (not the temporary copy); the content hash is the file's.
    assert {d.metadata["file_path"] for d in docs} == {"/bucket/reports/solar.pdf"}
    assert [d.metadata["file_sha256"] for d in docs] == [d.metadata["file_sha256"] for d in local]
    assert [d.text for d in docs] == [d.text for d in local]
