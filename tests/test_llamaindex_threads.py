"""One thread per store: LlamaIndex calls retrievers and vector stores from event loops and thread pools at
once, and every one of those calls must reach the (not thread-safe) embedded store from one thread."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from caprl_index.llama import CapRLVectorStore
from caprl_index.store import QdrantStore
from caprl_index.store.edge import EdgeEngine
from caprl_index.testing.thread_guard import ThreadGuard
from tests.llama_support import COLLECTION, edge_copy

QUERIES = ["battery storage prices", "solar installations by region", "bike lanes", "tent recall", "Terracell"]


def new_nodes(n: int, start: int) -> list[TextNode]:
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        vec = rng.standard_normal(384)
        node = TextNode(
            id_=str(uuid.uuid5(uuid.NAMESPACE_URL, f"stress-note-{i}")),
            text=f"stress note {i} about battery storage",
            metadata={"file_path": f"/stress/note-{i}.pdf", "file_sha256": f"{i:064x}", "page": 1, "kind": "text"},
            embedding=(vec / np.linalg.norm(vec)).tolist(),
        )
        out.append(node)
    return out


def test_concurrent_aretrieve_aquery_and_add_use_the_store_from_one_thread(embedder: Any, tmp_path: Path) -> None:
    settings = edge_copy(tmp_path, embedder)
    guard = ThreadGuard(EdgeEngine(settings.qdrant_path, COLLECTION))
    store = CapRLVectorStore(store=QdrantStore(settings, engine=guard))
    retriever = store.as_retriever(similarity_top_k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    vector = embedder.embed(["battery storage prices"])[0]
    try:
        expected = {q: [r.node.node_id for r in retriever.retrieve(q)] for q in QUERIES}

        async def from_the_loop() -> list[Any]:
            jobs: list[Any] = [retriever.aretrieve(QUERIES[i % 5]) for i in range(30)]
            jobs += [engine.aquery(QUERIES[i % 5]) for i in range(10)]
            jobs += [store.async_add(new_nodes(2, 100 + 2 * i)) for i in range(10)]
            jobs += [store.aquery(VectorStoreQuery(query_embedding=vector, query_str="battery", similarity_top_k=3))]
            return await asyncio.gather(*jobs)

        def from_threads(i: int) -> Any:  # what synchronous callers on other threads do meanwhile
            if i % 3 == 0:
                return store.add(new_nodes(1, 1000 + i))
            return retriever.retrieve(QUERIES[i % 5])

        with ThreadPoolExecutor(4) as pool:
            threaded = [pool.submit(from_threads, i) for i in range(24)]
            results = asyncio.run(from_the_loop())
            done = [f.result() for f in threaded]
    finally:
        store.close()
    assert guard.overlaps == 0, f"{guard.overlaps} store calls overlapped another thread's"
    assert len(guard.threads) == 1, f"the store was used from {len(guard.threads)} threads"
    assert guard.calls > 150
    # Everything answered, correctly: searches as when run alone (added notes rank below), every node stored.
    for i, nodes in enumerate(results[:30]):
        assert [r.node.node_id for r in nodes] == expected[QUERIES[i % 5]]
    assert all(r.source_nodes for r in results[30:40])
    assert len(done) == 24
    reopened = CapRLVectorStore(settings)
    try:
        assert len(reopened.get_nodes([n.node_id for n in new_nodes(20, 100)])) == 20
    finally:
        reopened.close()
