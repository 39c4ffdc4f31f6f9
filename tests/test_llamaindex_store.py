"""CapRLVectorStore: LlamaIndex's vector-store API on the caprl-index store (embedded and server), the file
registry kept in step with deletes, an IngestionPipeline that skips unchanged Documents across runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from caprl_index.errors import ConfigError
from caprl_index.llama import (
    CapRLEmbedding,
    CapRLReader,
    CapRLVectorStore,
    FigureNode,
    UnsupportedFilter,
    stable_node_id,
)
from caprl_index.llama.filters import NOTHING, translate
from caprl_index.pipeline import ingest
from caprl_index.store import PointFilter, QdrantStore
from caprl_index.store.payload import document_id
from tests.llama_support import INFOGRAPHIC, REPORT, edge_copy, server_copy, settings_at

QUERY = "battery storage prices by year"


def eq(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def count(settings: Any, path: Path) -> tuple[int, bool]:
    """Points of a file and whether the registry has a record of it (opens and closes the index)."""
    store = QdrantStore(settings, create=False)
    try:
        return store.count(PointFilter(file_paths=(str(path),))), store.get_record(str(path)) is not None
    finally:
        store.close()


# --- filters ----------------------------------------------------------------------------------------
def test_filters_translate_to_the_store_filter() -> None:
    flt = MetadataFilters(
        filters=[
            eq("kind", "text", FilterOperator.NE),
            eq("page", 2, FilterOperator.GT),
            eq("page", 7, FilterOperator.LTE),
            eq("figure_type", ["chart", "table"], FilterOperator.IN),
            MetadataFilters(filters=[eq("ref_doc_id", "d1"), eq("file_path", "/a.pdf")]),
        ]
    )
    spec = translate(flt, node_ids=["n1"])
    assert spec.point == PointFilter(
        kinds=("figure", "page"),
        page_from=3,
        page_to=7,
        figure_types=("chart", "table"),
        doc_ids=("d1",),
        file_paths=("/a.pdf",),
        ids=("n1",),
    )
    # Conditions that cannot all hold match nothing, without asking the store.
    both = MetadataFilters(filters=[eq("kind", "text"), eq("kind", "figure")])
    assert translate(both).resolve(None) is NOTHING  # type: ignore[arg-type]
    assert not translate(MetadataFilters(filters=[eq("page", 5, FilterOperator.LTE), eq("page", 5)])).impossible
    assert translate(MetadataFilters(filters=[eq("page", 5, FilterOperator.LT), eq("page", 5)])).impossible


@pytest.mark.parametrize(
    "filters",
    [
        MetadataFilters(filters=[eq("kind", "text"), eq("page", 2)], condition=FilterCondition.OR),
        MetadataFilters(filters=[eq("caption_model", "caprl")]),
        MetadataFilters(filters=[eq("page", [1, 2], FilterOperator.IN)]),
        MetadataFilters(filters=[eq("file_name", "report", FilterOperator.TEXT_MATCH)]),
    ],
    ids=["or", "other-key", "page-in", "text-match"],
)
def test_filters_the_store_cannot_express_fail_loudly(filters: MetadataFilters) -> None:
    with pytest.raises(UnsupportedFilter, match=r"Supported: kind|AND only") as err:
        translate(filters)
    assert isinstance(err.value, ConfigError)


# --- an IngestionPipeline into the embedded index ------------------------------------------------
def test_pipeline_with_docstore_skips_unchanged_documents(embedder: Any, tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    with CapRLReader(settings) as reader:
        docs = reader.load_data(REPORT)
    docstore = SimpleDocumentStore()

    def run() -> list[Any]:
        with CapRLVectorStore(settings) as store:
            pipeline = IngestionPipeline(
                transformations=[
                    SentenceSplitter(chunk_size=128, chunk_overlap=16, id_func=stable_node_id),
                    CapRLEmbedding(embedder=embedder),
                ],
                vector_store=store,
                docstore=docstore,
                docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,
            )
            return pipeline.run(documents=docs)

    first = run()
    assert len(first) > len(docs)
    assert run() == []  # nothing changed: nothing embedded or written again
    points, recorded = count(settings, REPORT)
    assert points == len(first) and not recorded  # the registry lists what `caprl-index ingest` indexed

    with CapRLVectorStore(settings) as store:
        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(embedder=embedder))
        hits = index.as_retriever(similarity_top_k=3).retrieve(QUERY)
        assert hits[0].node.metadata["page"] == 3
        assert {h.node.ref_doc_id for h in hits} == {document_id(str(REPORT), docs[0].metadata["file_sha256"])}
        figures = MetadataFilters(filters=[eq("kind", "figure"), eq("page", 3)])
        found = index.as_retriever(similarity_top_k=5, filters=figures).retrieve(QUERY)
        assert found and all((f.node.metadata["kind"], f.node.metadata["page"]) == ("figure", 3) for f in found)
        assert all(isinstance(f.node, FigureNode) and Path(f.node.image_path or "").is_file() for f in found)
        # The CLI's ranking over what LlamaIndex wrote.
        ranked = store.as_retriever(similarity_top_k=3, group_by_page=True).retrieve(QUERY)
        assert ranked[0].node.metadata["page"] == 3
        # get_nodes by id (in the order asked) and by filter.
        ids = [n.node_id for n in first[:3]][::-1]
        assert [n.node_id for n in store.get_nodes(ids)] == ids
        assert {n.metadata["page"] for n in store.get_nodes(filters=MetadataFilters(filters=[eq("page", 2)]))} == {2}


def test_query_modes_and_async_twins(embedder: Any, tmp_path: Path) -> None:
    settings = edge_copy(tmp_path, embedder)
    embed = CapRLEmbedding(embedder=embedder)
    with CapRLVectorStore(settings) as store:
        vector = embed.get_query_embedding("Terracell")

        def query(mode: VectorStoreQueryMode, **kw: Any) -> list[tuple[str, int, str]]:
            q = VectorStoreQuery(query_embedding=vector, query_str="Terracell", similarity_top_k=3, mode=mode, **kw)
            return [(n.metadata["file_name"], n.metadata["page"], n.metadata["kind"]) for n in store.query(q).nodes]

        target = ("solar-market-report-2024.pdf", 4, "figure")
        assert target in query(VectorStoreQueryMode.DEFAULT)  # hybrid by default, like the CLI
        assert target in query(VectorStoreQueryMode.SPARSE)
        store.hybrid = False
        assert target not in query(VectorStoreQueryMode.DEFAULT)  # dense alone misses the made-up name
        assert target in query(VectorStoreQueryMode.HYBRID)
        with pytest.raises(ConfigError, match="default, hybrid and sparse"):
            query(VectorStoreQueryMode.MMR)

        async def twins() -> tuple[Any, Any]:
            q = VectorStoreQuery(query_embedding=vector, query_str="Terracell", similarity_top_k=3)
            return await store.aquery(q), await store.aget_nodes(filters=MetadataFilters(filters=[eq("page", 4)]))

        result, nodes = asyncio.run(twins())
        assert (
            result.ids
            == store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=3, query_str="Terracell")).ids
        )
        assert nodes and {n.metadata["page"] for n in nodes} == {4}


# --- deletes keep the registry in step ----------------------------------------------------------------
def test_delete_ref_doc_then_ingest_indexes_the_file_again(embedder: Any, tmp_path: Path) -> None:
    settings = edge_copy(tmp_path, embedder)
    before, recorded = count(settings, REPORT)
    assert before > 0 and recorded
    with CapRLVectorStore(settings) as store:
        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(embedder=embedder))
        [hit] = index.as_retriever(similarity_top_k=1).retrieve(QUERY)
        assert hit.node.metadata["file_path"] == str(REPORT)
        index.delete_ref_doc(hit.node.ref_doc_id)  # type: ignore[arg-type]
    # The file's points and its record are gone; the other files are untouched.
    assert count(settings, REPORT) == (0, False)
    assert count(settings, INFOGRAPHIC)[0] > 0
    stats = ingest([REPORT.parent], settings, embedder=embedder)
    assert stats.files_indexed == 1 and stats.files_skipped == 2
    assert not any("lost points" in w for w in stats.warnings)  # a new file to it, not a repair
    assert count(settings, REPORT) == (before, True)


def test_delete_nodes_sends_the_file_back_to_ingest(embedder: Any, tmp_path: Path) -> None:
    settings = edge_copy(tmp_path, embedder)
    before, _ = count(settings, REPORT)
    with CapRLVectorStore(settings) as store:
        figures = MetadataFilters(filters=[eq("file_name", REPORT.name), eq("kind", "figure")])
        doomed = store.get_nodes(filters=figures)
        assert len(doomed) >= 3
        asyncio.run(store.adelete_nodes([doomed[0].node_id]))
        store.delete_nodes(filters=MetadataFilters(filters=[eq("file_path", str(REPORT)), eq("page", 5)]))
        with pytest.raises(ConfigError, match="clear"):
            store.delete_nodes()
    points, recorded = count(settings, REPORT)
    assert points < before - 1 and not recorded
    stats = ingest([REPORT], settings, embedder=embedder)
    assert stats.files_indexed == 1 and count(settings, REPORT) == (before, True)


def test_adding_a_new_version_replaces_the_old_one_and_clear_empties(embedder: Any, tmp_path: Path) -> None:
    """On the server engine: LlamaIndex nodes of a newer version of a file drop the older version's points."""
    server = server_copy(tmp_path, embedder)
    vector_store = CapRLVectorStore(store=server)
    try:
        old = vector_store.get_nodes(filters=MetadataFilters(filters=[eq("file_path", str(REPORT))]))
        other = vector_store.get_nodes(filters=MetadataFilters(filters=[eq("file_path", str(INFOGRAPHIC))]))
        new_sha = "f" * 64
        node = TextNode(
            text="Battery prices fell again in 2025.",
            metadata={**old[0].metadata, "file_sha256": new_sha, "page": 1, "kind": "text"},
            embedding=embedder.embed(["Battery prices fell again in 2025."])[0],
        )
        node.id_ = stable_node_id(0, node)
        asyncio.run(vector_store.async_add([node]))
        now = vector_store.get_nodes(filters=MetadataFilters(filters=[eq("file_path", str(REPORT))]))
        assert [n.node_id for n in now] == [node.node_id]
        assert now[0].ref_doc_id is None or now[0].metadata["file_sha256"] == new_sha
        assert len(vector_store.get_nodes(filters=MetadataFilters(filters=[eq("file_path", str(INFOGRAPHIC))]))) == len(
            other
        )
        assert vector_store.worker.run(lambda: vector_store.worker.store.get_record(str(REPORT))) is None

        vector_store.clear()
        assert (
            vector_store.get_nodes(
                filters=MetadataFilters(filters=[eq("kind", ["text", "figure", "page"], FilterOperator.IN)])
            )
            == []
        )
        assert vector_store.worker.run(lambda: vector_store.worker.store.records()) == {}
    finally:
        vector_store.close()


def test_nodes_without_provenance_or_embedding_are_refused(tmp_path: Path) -> None:
    with CapRLVectorStore(settings_at(tmp_path)) as store:
        with pytest.raises(ConfigError, match="embedding"):
            store.add([TextNode(text="x")])
        with pytest.raises(ConfigError, match="file_path/page"):
            store.add([TextNode(text="x", embedding=[0.1] * 384)])
        bad = TextNode(id_="not-a-uuid", text="x", embedding=[0.1] * 384, metadata={"file_path": "/a", "page": 1})
        with pytest.raises(ConfigError, match="UUID"):
            store.add([bad])
