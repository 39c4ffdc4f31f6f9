"""CapRLRetriever: the same results as `caprl-index search --json`, on the embedded and the server engine,
sync and async, inside LlamaIndex's query engines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from caprl_index.cli import main
from caprl_index.llama import CapRLRetriever, CapRLVectorStore, to_hit
from caprl_index.search import Searcher, SearchFilters
from caprl_index.store import QdrantStore
from caprl_index.store.payload import DESIGN_KEYS, design_metadata
from tests.llama_support import edge_copy, server_copy

QUERY = "battery storage prices by year"

FIGURES_P2_4 = SearchFilters(kind="figure", file_glob="solar*", page_from=2, page_to=4)
# (CLI flags, the Searcher.search call cmd_search makes for them, retriever arguments): one search each.
CASES: list[tuple[list[str], dict[str, Any], dict[str, Any]]] = [
    (["-k", "5"], {"k": 5}, {"similarity_top_k": 5}),
    (["-k", "5", "--dense-only"], {"k": 5, "hybrid": False}, {"similarity_top_k": 5, "hybrid": False}),
    (
        ["-k", "4", "--group-by", "page"],
        {"k": 4, "group_by_page": True},
        {"similarity_top_k": 4, "group_by_page": True},
    ),
    (
        ["-k", "3", "--kind", "figure", "--pages", "2-4", "--file", "solar*"],
        {"k": 3, "filters": FIGURES_P2_4},
        {
            "similarity_top_k": 3,
            "file_glob": "solar*",
            "filters": MetadataFilters(
                filters=[
                    MetadataFilter(key="kind", value="figure"),
                    MetadataFilter(key="page", value=2, operator=FilterOperator.GTE),
                    MetadataFilter(key="page", value=4, operator=FilterOperator.LTE),
                ]
            ),
        },
    ),
]


def cli_json(settings: Any, flags: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    argv = ["search", QUERY, "--json", "--qdrant-path", str(settings.qdrant_path), "--collection", "caprl"]
    assert main([*argv, *flags]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("flags", "call", "options"), CASES, ids=["hybrid", "dense-only", "by-page", "filtered"])
def test_retriever_equals_search_json_on_the_embedded_index(
    flags: list[str],
    call: dict[str, Any],
    options: dict[str, Any],
    embedder: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = edge_copy(tmp_path, embedder)
    expected = cli_json(settings, flags, capsys)  # the CLI opens and closes the index first
    assert expected
    with CapRLRetriever(settings=settings, **options) as retriever:
        results = retriever.retrieve(QUERY)
    assert [to_hit(r).as_json() for r in results] == expected
    store = QdrantStore(settings, create=False)
    try:
        payloads = {p.id: p.payload for p in store.retrieve([r.node.node_id for r in results])}
    finally:
        store.close()
    for result in results:  # node ids are point ids; metadata are the payload's own values
        payload = payloads[result.node.node_id]
        assert result.node.metadata.items() <= payload.items()
        assert design_metadata(result.node.metadata) == {k: payload.get(k) for k in DESIGN_KEYS}


def test_retriever_equals_the_cli_search_on_a_server_collection(embedder: Any, tmp_path: Path) -> None:
    store = server_copy(tmp_path, embedder)
    vector_store = CapRLVectorStore(store=store)
    try:
        for flags, call, options in CASES:
            got = [to_hit(r).as_json() for r in CapRLRetriever(vector_store, **options).retrieve(QUERY)]
            # What `search --json` prints for these flags: the Searcher call cmd_search makes, on this store.
            expected = vector_store.worker.run(_searcher_json, vector_store, call)
            assert got and got == expected, flags
    finally:
        vector_store.close()


def _searcher_json(vector_store: CapRLVectorStore, call: dict[str, Any]) -> list[dict[str, Any]]:
    searcher = Searcher(vector_store.settings, store=vector_store.worker.store)
    return [h.as_json() for h in searcher.search(QUERY, **call)]


def test_async_and_inside_query_engines_chat_engines_and_agent_tools(embedder: Any, tmp_path: Path) -> None:
    from llama_index.core.chat_engine import CondensePlusContextChatEngine
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.tools import RetrieverTool

    settings = edge_copy(tmp_path, embedder)
    with CapRLRetriever(settings=settings, similarity_top_k=3, group_by_page=True) as retriever:
        expected = [(r.node.node_id, r.score) for r in retriever.retrieve(QUERY)]

        async def asynchronously() -> tuple[Any, Any, Any]:
            found = await retriever.aretrieve(QUERY)
            answer = await RetrieverQueryEngine.from_args(retriever, llm=MockLLM()).aquery(QUERY)
            tool = RetrieverTool.from_defaults(retriever=retriever, name="documents", description="report pages")
            return found, answer, await tool.acall(QUERY)

        found, answer, tool_output = asyncio.run(asynchronously())
        assert [(r.node.node_id, r.score) for r in found] == expected
        assert [n.node.node_id for n in answer.source_nodes] == [e[0] for e in expected]
        assert "solar-market-report-2024.pdf" in tool_output.content and tool_output.raw_output
        chat = CondensePlusContextChatEngine.from_defaults(retriever=retriever, llm=MockLLM())
        reply = chat.chat(QUERY)
        assert [n.node.node_id for n in reply.source_nodes] == [e[0] for e in expected]
