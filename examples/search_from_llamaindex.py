"""Query a collection built by `caprl-index ingest` from plain LlamaIndex: the stock QdrantVectorStore.

    caprl-index ingest examples/docs
    python examples/search_from_llamaindex.py "battery storage prices by year" -k 5 [--kind figure]

The store settings (CAPRL_QDRANT_PATH or CAPRL_QDRANT_URL, CAPRL_COLLECTION, CAPRL_EMBED_MODEL) are the
CLI's, read from the environment or caprl-index.toml. Only the query embedding comes from caprl-index
(`CapRLEmbedding`: the same model that embedded the collection); the rest is stock LlamaIndex.
"""

from __future__ import annotations

import argparse
import sys

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from caprl_index.config import Settings
from caprl_index.reader import CapRLEmbedding


def open_client(settings: Settings) -> QdrantClient:
    """The Qdrant the CLI wrote to: a server by URL, else the embedded folder (one process at a time)."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClient(url=settings.qdrant_url, api_key=key)
    if not settings.qdrant_path.exists():
        sys.exit(f"no index at {settings.qdrant_path}: run `caprl-index ingest PATH` first, or set CAPRL_QDRANT_PATH")
    return QdrantClient(path=str(settings.qdrant_path))


def show(hits: list[NodeWithScore]) -> None:
    """One block per hit: score, file, page, kind and figure box (PDF points, origin top-left), a snippet."""
    for rank, hit in enumerate(hits, 1):
        m = hit.node.metadata
        where = f"{m.get('file_name')} p.{m.get('page')}/{m.get('page_count')}"
        what = m.get("kind") if m.get("kind") == "text" else f"{m.get('kind')}:{m.get('figure_type')}"
        bbox = m.get("bbox")
        box = " bbox=[" + ", ".join(f"{v:.0f}" for v in bbox) + "]" if bbox else ""
        source = f" caption={m['caption_source']}" if m.get("caption_source") else ""
        snippet = " ".join(hit.node.get_content().split())[:160]
        print(f"{rank}. {hit.score:.3f}  {where}  {what}{box}{source}\n   {m.get('file_path')}\n   {snippet}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("query")
    parser.add_argument("-k", type=int, default=5, help="results to show (default 5)")
    parser.add_argument("--kind", choices=("text", "figure", "page"), help="only this kind of chunk")
    parser.add_argument("--collection", help="collection name (default: CAPRL_COLLECTION or 'caprl')")
    args = parser.parse_args(argv)

    settings = Settings(**({"collection": args.collection} if args.collection else {}))
    client = open_client(settings)
    try:
        if not client.collection_exists(settings.collection):
            sys.exit(f"collection {settings.collection!r} not found: run `caprl-index ingest PATH` first")
        store = QdrantVectorStore(client=client, collection_name=settings.collection)
        index = VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(settings))
        filters = MetadataFilters(filters=[MetadataFilter(key="kind", value=args.kind)]) if args.kind else None
        show(index.as_retriever(similarity_top_k=args.k, filters=filters).retrieve(args.query))
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
