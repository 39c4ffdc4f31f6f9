"""Query a server collection built by `caprl-index ingest` with the stock LlamaIndex QdrantVectorStore.

    CAPRL_QDRANT_URL=http://localhost:6333 caprl-index ingest examples/docs
    CAPRL_QDRANT_URL=http://localhost:6333 python examples/search_from_llamaindex.py "Terracell" -k 5 \
        [--hybrid] [--kind figure] [--async]

Stock LlamaIndex all the way; caprl-index gives only the query embedding (`CapRLEmbedding`, the model that
embedded the collection) and, with `--hybrid`, its BM25 encoders (`sparse_vector_name="bm25"`: the sparse
vectors the CLI stored; no FastEmbed needed). `--async` queries through `AsyncQdrantClient` (the stock store
answers `aretrieve` only when given one). An embedded index (Qdrant Edge) is not a qdrant-client folder: use
`CapRLVectorStore` / `CapRLRetriever` for it (examples/retriever.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
from llama_index.vector_stores.qdrant import QdrantVectorStore

from caprl_index.config import Settings
from caprl_index.llama import CapRLEmbedding, bm25_documents, bm25_queries, rrf_fusion


def stock_store(collection: str, *, hybrid: bool, **clients: Any) -> QdrantVectorStore:
    """The stock store over the CLI's collection; `clients` are `client=` and/or `aclient=`."""
    if not hybrid:
        return QdrantVectorStore(collection_name=collection, **clients)
    return QdrantVectorStore(
        collection_name=collection,
        enable_hybrid=True,
        dense_vector_name="text-dense",
        sparse_vector_name="bm25",
        sparse_doc_fn=bm25_documents,
        sparse_query_fn=bm25_queries,
        hybrid_fusion_fn=rrf_fusion,  # reciprocal-rank fusion with the CLI's constant
        **clients,
    )


def retriever(store: QdrantVectorStore, embed: CapRLEmbedding, k: int, kind: str | None) -> BaseRetriever:
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    filters = MetadataFilters(filters=[MetadataFilter(key="kind", value=kind)]) if kind else None
    mode = {"vector_store_query_mode": "hybrid", "sparse_top_k": k} if store.enable_hybrid else {}
    return index.as_retriever(similarity_top_k=k, filters=filters, **mode)


def show(hits: list[NodeWithScore]) -> None:
    """One block per hit: score, file, page, kind and figure box (PDF points, origin top-left), a snippet."""
    for rank, hit in enumerate(hits, 1):
        m = hit.node.metadata
        what = m["kind"] if m["kind"] == "text" else f"{m['kind']}:{m.get('figure_type')}"
        # The box is four flat keys in node metadata (flat-metadata stores take no lists).
        corners = [m[k] for k in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1") if k in m]
        box = " bbox=[" + ", ".join(f"{v:.0f}" for v in corners) + "]" if corners else ""
        snippet = " ".join(hit.node.get_content().split())[:160]
        print(f"{rank}. {hit.score:.3f}  {m['file_name']} p.{m['page']}/{m['page_count']}  {what}{box}\n   {snippet}")


async def aretrieve(url: str, key: str | None, args: argparse.Namespace, settings: Settings) -> list[NodeWithScore]:
    from qdrant_client import AsyncQdrantClient

    aclient = AsyncQdrantClient(url=url, api_key=key)
    try:
        store = stock_store(settings.collection, hybrid=args.hybrid, aclient=aclient)
        return await retriever(store, CapRLEmbedding(settings), args.k, args.kind).aretrieve(args.query)
    finally:
        await aclient.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("query")
    parser.add_argument("-k", type=int, default=5, help="results to show (default 5)")
    parser.add_argument("--kind", choices=("text", "figure", "page"), help="only this kind of chunk")
    parser.add_argument("--hybrid", action="store_true", help="fuse our BM25 with the dense search")
    parser.add_argument("--async", dest="use_async", action="store_true", help="query with AsyncQdrantClient")
    args = parser.parse_args(argv)

    settings = Settings()
    if not settings.qdrant_url:
        sys.exit("set CAPRL_QDRANT_URL: the stock store needs a Qdrant server (embedded: examples/retriever.py)")
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    if args.use_async:
        show(asyncio.run(aretrieve(settings.qdrant_url, key, args, settings)))
        return 0
    from qdrant_client import QdrantClient

    client = QdrantClient(url=settings.qdrant_url, api_key=key)
    try:
        store = stock_store(settings.collection, hybrid=args.hybrid, client=client)
        show(retriever(store, CapRLEmbedding(settings), args.k, args.kind).retrieve(args.query))
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
