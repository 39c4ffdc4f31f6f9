"""LlamaIndex integration with real objects: the stock QdrantVectorStore (dense, hybrid with our BM25, async)
over a collection the library built, CapRLReader inside SimpleDirectoryReader and an IngestionPipeline,
captions from the loopback vLLM server."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, ImageDocument, MetadataMode
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import node_to_metadata_dict
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import AsyncQdrantClient, QdrantClient

from caprl_index.config import Settings
from caprl_index.llama import CapRLEmbedding, CapRLReader, bm25_documents, bm25_queries, rrf_fusion
from caprl_index.store.payload import BBOX_KEYS, document_id
from caprl_index.testing.fake_vllm import FakeVLLM
from tests.conftest import EXAMPLES
from tests.llama_support import REPORT, server_copy, settings_at

DECK = (EXAMPLES / "quarterly-review.pptx").resolve()
QUERY = "battery storage prices by year"
# On every node; figures and pages also carry figure_type, caption_source, image_sha256 and the box.
PROVENANCE = {
    "file_path", "file_name", "file_sha256", "page", "page_count", "kind", "page_width", "page_height",
    "chunk_index",
}  # fmt: skip
FIGURE_KEYS = {"figure_type", "caption_source", "image_sha256", *BBOX_KEYS}


@pytest.fixture(scope="module")
def reader_docs(tmp_path_factory: pytest.TempPathFactory) -> list[Document]:
    """examples/docs' PDFs and deck through SimpleDirectoryReader with CapRLReader as the extractor."""
    with CapRLReader(settings_at(tmp_path_factory.mktemp("reader"))) as reader:
        sdr = SimpleDirectoryReader(
            str(EXAMPLES), file_extractor={".pdf": reader, ".pptx": reader}, raise_on_error=True
        )
        return sdr.load_data()


def server_client(tmp_path: Path, embedder: Any) -> tuple[Path, Settings]:
    """The example index in a server-mode collection (qdrant-client's local mode stands in for the server),
    closed again so a stock client can open its folder; the folder and the index's settings."""
    store = server_copy(tmp_path, embedder)
    settings = store.settings
    store.close()
    return tmp_path / "server", settings


def test_stock_qdrant_vector_store_reads_cli_collection(embedder: Any, tmp_path: Path) -> None:
    folder, settings = server_client(tmp_path, embedder)
    client = QdrantClient(path=str(folder))
    try:
        store = QdrantVectorStore(client=client, collection_name=settings.collection)
        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(embedder=embedder))
        hits = index.as_retriever(similarity_top_k=5).retrieve(QUERY)
        top = hits[0].node
        assert top.metadata["page"] == 3
        assert top.metadata["file_path"] == str(REPORT)
        # One ref_doc_id per file version, the reader's too.
        assert top.ref_doc_id == document_id(str(REPORT), top.metadata["file_sha256"])
        for hit in hits:
            meta = hit.node.metadata
            assert set(meta) >= PROVENANCE
            assert (set(meta) >= FIGURE_KEYS) == (meta["kind"] != "text")
            assert None not in meta.values()  # flat metadata: no nulls, the box as four numbers
        [point] = client.retrieve(settings.collection, [top.node_id], with_payload=True)
        assert point.payload is not None and top.get_content() == point.payload["text"]

        # Top-level payload keys work as LlamaIndex metadata filters on the stock store.
        figures_only = MetadataFilters(filters=[MetadataFilter(key="kind", value="figure")])
        found = index.as_retriever(similarity_top_k=3, filters=figures_only).retrieve(QUERY)
        assert found and all(h.node.metadata["kind"] == "figure" for h in found)
        figure = found[0].node.metadata
        assert figure["page"] == 3 and figure["figure_type"] == "chart"
        x0, y0, x1, y1 = (figure[k] for k in BBOX_KEYS)
        assert 0 <= x0 < x1 <= figure["page_width"] and 0 <= y0 < y1 <= figure["page_height"]
        [raw] = client.retrieve(settings.collection, [found[0].node.node_id], with_payload=True)
        assert raw.payload is not None and raw.payload["bbox"] == [x0, y0, x1, y1]  # the design's list
    finally:
        client.close()


def hybrid_store(**clients: Any) -> QdrantVectorStore:
    """The stock store in hybrid mode with caprl-index's BM25 (no FastEmbed): the README's snippet."""
    return QdrantVectorStore(
        collection_name="caprl",
        enable_hybrid=True,
        dense_vector_name="text-dense",
        sparse_vector_name="bm25",
        sparse_doc_fn=bm25_documents,
        sparse_query_fn=bm25_queries,
        hybrid_fusion_fn=rrf_fusion,
        **clients,
    )


def where(hits: list[Any]) -> list[tuple[str, int, str]]:
    return [(h.node.metadata["file_name"], h.node.metadata["page"], h.node.metadata["kind"]) for h in hits]


def test_stock_hybrid_store_finds_what_only_bm25_matches(embedder: Any, tmp_path: Path) -> None:
    """ "Terracell", a made-up supplier printed only in the page-4 donut chart: the dense model misses it."""
    folder, _ = server_client(tmp_path, embedder)
    embed = CapRLEmbedding(embedder=embedder)
    target = ("solar-market-report-2024.pdf", 4, "figure")
    client = QdrantClient(path=str(folder))
    try:
        dense = VectorStoreIndex.from_vector_store(QdrantVectorStore(client=client, collection_name="caprl"), embed)
        assert target not in where(dense.as_retriever(similarity_top_k=3).retrieve("Terracell"))
        hybrid = VectorStoreIndex.from_vector_store(hybrid_store(client=client), embed_model=embed)
        retriever = hybrid.as_retriever(similarity_top_k=3, sparse_top_k=3, vector_store_query_mode="hybrid")
        assert target in where(retriever.retrieve("Terracell"))
        assert where(retriever.retrieve(QUERY))[0][:2] == ("solar-market-report-2024.pdf", 3)
    finally:
        client.close()


def test_stock_store_async_with_an_async_client(embedder: Any, tmp_path: Path) -> None:
    """`aretrieve` on the stock store needs `aclient=AsyncQdrantClient(...)` (else: "Async client is not
    initialized!"); hybrid works the same way."""
    folder, _ = server_client(tmp_path, embedder)
    embed = CapRLEmbedding(embedder=embedder)

    def retrievers(store: QdrantVectorStore) -> tuple[Any, Any]:
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
        hybrid = {"vector_store_query_mode": "hybrid", "sparse_top_k": 5}
        return index.as_retriever(similarity_top_k=5), index.as_retriever(similarity_top_k=5, **hybrid)

    client = QdrantClient(path=str(folder))
    try:
        dense_sync, _ = retrievers(QdrantVectorStore(client=client, collection_name="caprl"))
        _, hybrid_sync = retrievers(hybrid_store(client=client))
        expected = [where(dense_sync.retrieve(QUERY)), where(hybrid_sync.retrieve("Terracell"))]
    finally:
        client.close()  # a local folder takes one client at a time; a server takes both

    async def both() -> list[list[tuple[str, int, str]]]:
        aclient = AsyncQdrantClient(path=str(folder))
        try:
            dense, _ = retrievers(QdrantVectorStore(aclient=aclient, collection_name="caprl"))
            _, hybrid = retrievers(hybrid_store(aclient=aclient))
            return [where(await dense.aretrieve(QUERY)), where(await hybrid.aretrieve("Terracell"))]
        finally:
            await aclient.close()

    assert asyncio.run(both()) == expected


def test_reader_documents_per_page_text_and_figure(reader_docs: list[Document]) -> None:
    by_file: dict[str, list[Document]] = {}
    for doc in reader_docs:
        assert set(doc.metadata) >= PROVENANCE, doc.metadata.keys()
        by_file.setdefault(doc.metadata["file_name"], []).append(doc)
    assert set(by_file) == {"solar-market-report-2024.pdf", "city-transit-infographic.pdf", "quarterly-review.pptx"}

    report = by_file["solar-market-report-2024.pdf"]
    assert sorted(d.metadata["page"] for d in report if d.metadata["kind"] == "text") == [1, 2, 3, 4, 5]
    chart = next(d for d in report if d.metadata["kind"] == "figure" and d.metadata["page"] == 3)
    assert chart.metadata["figure_type"] == "chart" and set(chart.metadata) >= FIGURE_KEYS
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
    # One ref_doc_id per file version, the one the CLI gives that version's points.
    for doc in reader_docs:
        assert doc.ref_doc_id == document_id(doc.metadata["file_path"], doc.metadata["file_sha256"])


def test_reader_figures_are_image_documents_of_the_kept_crop(reader_docs: list[Document]) -> None:
    figures = [d for d in reader_docs if d.metadata["kind"] != "text"]
    assert figures and all(isinstance(d, ImageDocument) for d in figures)
    for doc in figures:
        assert doc.image_path is not None and Path(doc.image_path).is_file()
        assert doc.image_path.endswith(doc.metadata["image_uri"])  # relative to the image root, as on points
        assert doc.image is None  # bytes are read when a model is sent them, not carried around
    texts = [d for d in reader_docs if d.metadata["kind"] == "text"]
    assert texts and not any(isinstance(d, ImageDocument) for d in texts)
    # Text Documents carry their page's render (every page of a PDF has one), as the CLI's points do.
    renders = {d.metadata.get("page_image_uri") for d in texts if d.metadata["file_name"].endswith(".pdf")}
    assert None not in renders and all(uri.endswith(".webp") for uri in renders)
    root = Path(figures[0].image_path or "").parents[2]  # <image root>/crops/ab/<sha>.png
    assert all((root / uri).is_file() for uri in renders)


def test_every_node_kind_exports_to_flat_metadata_stores(reader_docs: list[Document]) -> None:
    """Chroma, Pinecone and the like take str/int/float/bool values only: no list, no None."""
    kinds = {d.metadata["kind"] for d in reader_docs}
    assert kinds == {"text", "figure", "page"}
    nodes = SentenceSplitter(chunk_size=128, chunk_overlap=0).get_nodes_from_documents(reader_docs)
    assert {type(n).__name__ for n in nodes} == {"TextNode", "ImageNode"}
    for node in [*reader_docs, *nodes]:
        node_to_metadata_dict(node, flat_metadata=True)  # raises on a list or a dict value
        assert all(isinstance(v, str | int | float | bool) for v in node.metadata.values()), node.metadata
        shown = node.get_content(metadata_mode=MetadataMode.LLM)
        header = shown[: len(shown) - len(node.get_content())]
        # A model sees where a chunk is and what it is; not hashes, boxes, paths or nulls.
        for noise in ("None", "bbox", "sha256", "file_path", "caption_source", "chunk_index", "page_width"):
            assert noise not in header, (noise, header)
        assert f"page: {node.metadata['page']}" in header


def test_reader_loads_asynchronously(reader_docs: list[Document], tmp_path: Path) -> None:
    """SimpleDirectoryReader.aload_data over CapRLReader: the same Documents, files parsed one at a time."""
    with CapRLReader(settings_at(tmp_path)) as reader:
        sdr = SimpleDirectoryReader(str(EXAMPLES), required_exts=[".pdf"], file_extractor=reader.file_extractor())
        docs = asyncio.run(sdr.aload_data())
    expected = [(d.id_, d.text) for d in reader_docs if d.metadata["file_name"].endswith(".pdf")]
    assert sorted((d.id_, d.text) for d in docs) == sorted(expected)


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
        file_id = document_id(str(REPORT), docs[0].metadata["file_sha256"])
        pages = {(d.metadata["page"], d.metadata["kind"]): d for d in docs}
        for node in nodes:
            assert node.ref_doc_id == file_id  # the file version's, as on the CLI's points
            parent = next(d for (page, _), d in pages.items() if page == node.metadata["page"])
            assert {k: node.metadata[k] for k in PROVENANCE - {"kind", "chunk_index"}} == {
                k: parent.metadata[k] for k in PROVENANCE - {"kind", "chunk_index"}
            }
            assert node.embedding is not None and len(node.embedding) == 384

        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(embedder=embedder))
        on_page_3 = MetadataFilters(filters=[MetadataFilter(key="page", value=3, operator=FilterOperator.EQ)])
        hits = index.as_retriever(similarity_top_k=2, filters=on_page_3).retrieve(QUERY)
        assert hits and all(h.node.metadata["page"] == 3 for h in hits)
        assert index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0].node.metadata["page"] == 3
        # `delete_ref_doc` of the file version removes every node of the file.
        index.delete_ref_doc(file_id)
        assert client.count("from-reader").count == 0
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
        settings = settings_at(tmp_path, vllm_url=server.url, captioner="auto")
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
    settings = settings_at(tmp_path, captioner="auto")  # nothing listens at vllm_url
    with CapRLReader(settings) as reader:
        docs = reader.load_data(REPORT, extra_info={"collection": "reports", "file_path": "relative.pdf"})
    assert len(reader.warnings) == 1 and "vLLM is not serving" in reader.warnings[0]
    assert "load the files again" in reader.warnings[0] and "caprl-index ingest" not in reader.warnings[0]
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
        with CapRLReader(settings_at(tmp_path)) as reader:
            extractor: dict[str, Any] = {".pdf": reader}
            docs = SimpleDirectoryReader("/bucket/reports", fs=memory, file_extractor=extractor).load_data()
            local = reader.load_data(REPORT)
    finally:
        memory.rm("/bucket", recursive=True)
    # The remote path is the provenance (not the temporary copy); the content hash is the file's.
    assert {d.metadata["file_path"] for d in docs} == {"/bucket/reports/solar.pdf"}
    assert [d.metadata["file_sha256"] for d in docs] == [d.metadata["file_sha256"] for d in local]
    assert [d.text for d in docs] == [d.text for d in local]
