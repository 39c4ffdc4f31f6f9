"""LlamaIndex integration: read files, store and search them the way the CLI does.

    CapRLReader          files → page-text Documents and figure ImageDocuments (llama/reader.py)
    CapRLEmbedding       the index's embedding model as a LlamaIndex embedding (llama/embedding.py)
    CapRLVectorStore     a vector store over the caprl-index store, embedded or server (llama/vector_store.py)
    CapRLRetriever       `caprl-index search` as a retriever: hybrid, page grouping, filters (llama/retriever.py)
    bm25_documents, bm25_queries, rrf_fusion
                         our BM25 for the stock QdrantVectorStore in hybrid mode (llama/sparse.py)
    OpenAICompatibleLLM  a chat LLM on any OpenAI-compatible server, images included (llama/llm.py)
    FigureNode, stable_node_id, to_hit, UnsupportedFilter

Imports are lazy: `import caprl_index.llama` loads nothing heavy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caprl_index.llama.embedding import CapRLEmbedding
    from caprl_index.llama.filters import UnsupportedFilter
    from caprl_index.llama.llm import OpenAICompatibleLLM
    from caprl_index.llama.nodes import FigureNode, stable_node_id, to_hit
    from caprl_index.llama.reader import CapRLReader
    from caprl_index.llama.retriever import CapRLRetriever
    from caprl_index.llama.sparse import bm25_documents, bm25_queries, rrf_fusion
    from caprl_index.llama.vector_store import CapRLVectorStore

_WHERE = {
    "CapRLEmbedding": "embedding",
    "CapRLReader": "reader",
    "CapRLRetriever": "retriever",
    "CapRLVectorStore": "vector_store",
    "FigureNode": "nodes",
    "OpenAICompatibleLLM": "llm",
    "UnsupportedFilter": "filters",
    "bm25_documents": "sparse",
    "bm25_queries": "sparse",
    "rrf_fusion": "sparse",
    "stable_node_id": "nodes",
    "to_hit": "nodes",
}
__all__ = [
    "CapRLEmbedding",
    "CapRLReader",
    "CapRLRetriever",
    "CapRLVectorStore",
    "FigureNode",
    "OpenAICompatibleLLM",
    "UnsupportedFilter",
    "bm25_documents",
    "bm25_queries",
    "rrf_fusion",
    "stable_node_id",
    "to_hit",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"caprl_index.llama.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'caprl_index.llama' has no attribute {name!r}")
