"""Chunk → Qdrant point: deterministic ids and the payload contract (LlamaIndex-readable).

The payload is what LlamaIndex's `QdrantVectorStore` writes (`node_to_metadata_dict`: `_node_content`,
`_node_type`, `doc_id`, `document_id`, `ref_doc_id`, metadata keys at top level) plus `text` and the
provenance keys of the design, on every point.
"""

from __future__ import annotations

import uuid
from typing import Any

from caprl_index.models import Chunk
from caprl_index.store.engine import NAMESPACE

# Keys that help filtering and provenance but only add noise to an embedding or an LLM prompt.
_HIDDEN_KEYS = [
    "file_path",
    "file_sha256",
    "bbox",
    "page_width",
    "page_height",
    "caption_source",
    "caption_model",
    "prompt_version",
    "image_sha256",
    "chunk_index",
    "page_count",
    "caption_truncated",
    "kind",
    "image_uri",
    "page_image_uri",
]


def document_id(file_path: str) -> str:
    """The LlamaIndex ref_doc_id of a source file: stable across re-ingests of the same path."""
    return str(uuid.uuid5(NAMESPACE, f"file:{file_path}"))


def point_id(chunk: Chunk) -> str:
    """uuid5 of file path + file hash + page + kind + region + chunk index: re-runs overwrite, never duplicate.

    The path is part of the key so that two copies of one file in different folders stay two sets of points.
    """
    key = (
        f"{chunk.file.path}|{chunk.file.sha256}|{chunk.page.number}|{chunk.kind}|"
        f"{chunk.region_index}|{chunk.chunk_index}"
    )
    return str(uuid.uuid5(NAMESPACE, key))


def metadata(chunk: Chunk) -> dict[str, Any]:
    """The provenance keys of the design (without `text`)."""
    fig, cap, page = chunk.figure, chunk.caption, chunk.page
    meta: dict[str, Any] = {
        "file_path": chunk.file.path,
        "file_name": chunk.file.name,
        "file_sha256": chunk.file.sha256,
        "page": page.number,
        "page_count": chunk.page_count,
        "kind": chunk.kind,
        "figure_type": fig.figure_type if fig else None,
        "bbox": [round(v, 2) for v in fig.bbox] if fig and fig.bbox else None,
        "page_width": float(page.width),
        "page_height": float(page.height),
        "caption_source": cap.source if cap else None,
        "caption_model": cap.model if cap else None,
        "prompt_version": cap.prompt_version if cap else None,
        "image_sha256": fig.image_sha256 if fig else None,
        "chunk_index": chunk.chunk_index,
        "image_uri": chunk.image_uri,
        "page_image_uri": chunk.page_image_uri,
    }
    if cap is not None and cap.truncated:
        meta["caption_truncated"] = True
    return meta


def payload(chunk: Chunk) -> dict[str, Any]:
    """The full point payload, exactly as LlamaIndex would write the equivalent TextNode, plus `text`."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    meta = metadata(chunk)
    doc_id = document_id(chunk.file.path)
    node = TextNode(
        id_=point_id(chunk),
        text=chunk.text,
        metadata=meta,
        excluded_embed_metadata_keys=list(_HIDDEN_KEYS),
        excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)},
    )
    out = node_to_metadata_dict(node, remove_text=False, flat_metadata=False)
    out["text"] = chunk.text
    return out
