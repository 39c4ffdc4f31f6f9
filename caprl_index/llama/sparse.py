"""caprl-index's BM25 for the stock `QdrantVectorStore` in hybrid mode (no FastEmbed, no SPLADE download).

    store = QdrantVectorStore(
        collection_name="caprl", client=client, aclient=aclient,
        enable_hybrid=True, dense_vector_name="text-dense", sparse_vector_name="bm25",
        sparse_doc_fn=bm25_documents, sparse_query_fn=bm25_queries, hybrid_fusion_fn=rrf_fusion,
    )

The encoders give the sparse vectors the CLI stores (`store/sparse.py`: saturated term frequency, IDF
applied by Qdrant at query time), so a collection written by `caprl-index ingest` and nodes added through
the stock store share one vocabulary. `rrf_fusion` fuses the dense and BM25 lists by reciprocal rank with
the CLI's constant; LlamaIndex's default (relative score fusion) works too but ranks differently.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import VectorStoreQueryResult

from caprl_index.search import SPARSE_WEIGHT, rrf_scores
from caprl_index.store.sparse import document_vector, query_vector

BatchSparse = tuple[list[list[int]], list[list[float]]]


def bm25_documents(texts: list[str]) -> BatchSparse:
    """`sparse_doc_fn`: one BM25 document vector per text."""
    vectors = [document_vector(t) for t in texts]
    return [v[0] for v in vectors], [v[1] for v in vectors]


def bm25_queries(texts: list[str]) -> BatchSparse:
    """`sparse_query_fn`: one BM25 query vector per text (each distinct term once)."""
    vectors = [query_vector(t) for t in texts]
    return [v[0] for v in vectors], [v[1] for v in vectors]


def rrf_fusion(
    dense_result: VectorStoreQueryResult, sparse_result: VectorStoreQueryResult, **kwargs: Any
) -> VectorStoreQueryResult:
    """`hybrid_fusion_fn`: the CLI's weighted reciprocal-rank fusion (`search.rrf_scores`; BM25 weighs
    SPARSE_WEIGHT) of both lists, the best `top_k`
    (`alpha` is ignored: ranks, not scores, are fused). Equal scores keep node id order, as the CLI's do."""
    top_k = int(kwargs.get("top_k", 2))
    results = (dense_result.nodes or [], sparse_result.nodes or [])
    scores = rrf_scores([[n.node_id for n in nodes] for nodes in results], (1.0, SPARSE_WEIGHT))
    nodes: dict[str, BaseNode] = {}
    for result in results:
        for node in result:
            nodes.setdefault(node.node_id, node)
    order = sorted(scores, key=lambda nid: (-scores[nid], nid))[:top_k]
    return VectorStoreQueryResult(
        nodes=[nodes[i] for i in order], similarities=[scores[i] for i in order], ids=list(order)
    )
