"""Chunk → Qdrant point: deterministic ids and the payload contract (LlamaIndex-readable).

The payload is what LlamaIndex's `QdrantVectorStore` writes (`node_to_metadata_dict`: `_node_content`,
`_node_type`, `doc_id`, `document_id`, `ref_doc_id`, metadata keys at top level) plus `text` and the
provenance keys of the design, on every point.

Two forms of the same metadata:

- the design's (top-level payload keys, `search --json`): every key present, `bbox` a list, `None` where a
  key does not apply;
- the node's (what LlamaIndex sees: `_node_content`, reader Documents): flat, so Chroma- or Pinecone-style
  stores accept it: `bbox` as four floats `bbox_x0 … bbox_y1`, no `None` values. `node_metadata` and
  `design_metadata` convert losslessly between them.

Every node of one file version shares one ref_doc_id, `document_id(path, sha256)`, whichever way it was built
(CLI, `CapRLReader`, any splitter after it).
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


# Bumped when stored points change meaning: 2 = ref_doc_id per file version, flat node metadata.
PAYLOAD_VERSION = 2

BBOX_KEYS = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")
# The top-level payload keys of the design (`search --json` reads them), in the design's order.
DESIGN_KEYS = (
    "file_path", "file_name", "file_sha256", "page", "page_count", "kind", "figure_type", "bbox",
    "page_width", "page_height", "caption_source", "caption_model", "prompt_version", "image_sha256",
    "chunk_index", "image_uri", "page_image_uri",
)  # fmt: skip
# What a model is shown of a node: where it is and what it is. The rest is provenance for code.
LLM_KEYS = ("file_name", "page", "figure_type")
HIDDEN_KEYS = list(dict.fromkeys([*_HIDDEN_KEYS, *BBOX_KEYS, "image_uri", "page_image_uri"]))


def document_id(file_path: str, file_sha256: str) -> str:
    """The LlamaIndex ref_doc_id of one version of a source file (every node of it, however it was built)."""
    return str(uuid.uuid5(NAMESPACE, f"file:{file_path}|{file_sha256}"))


def node_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Flat metadata: `bbox` as four floats, `None` values dropped (other values kept as they are)."""
    out = {k: v for k, v in meta.items() if v is not None and k != "bbox"}
    bbox = meta.get("bbox")
    if bbox is not None:
        out.update(zip(BBOX_KEYS, (float(v) for v in bbox), strict=True))
    return out


def design_metadata(flat: dict[str, Any]) -> dict[str, Any]:
    """The design's keys from flat metadata: `bbox` rebuilt as a list, absent keys `None`."""
    out = {k: flat.get(k) for k in DESIGN_KEYS}
    if all(k in flat for k in BBOX_KEYS):
        out["bbox"] = [flat[k] for k in BBOX_KEYS]
    return out


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


def hidden_from_llm(meta: dict[str, Any]) -> list[str]:
    """Every key of `meta` a model should not be shown (hashes, boxes, paths, a reader's file facts)."""
    return [k for k in meta if k not in LLM_KEYS]


def payload(chunk: Chunk) -> dict[str, Any]:
    """The full point payload, exactly as LlamaIndex would write the equivalent TextNode, plus `text`."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    meta = metadata(chunk)
    flat = node_metadata(meta)
    node = TextNode(
        id_=point_id(chunk),
        text=chunk.text,
        metadata=flat,
        excluded_embed_metadata_keys=list(HIDDEN_KEYS),
        excluded_llm_metadata_keys=hidden_from_llm(flat),
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document_id(chunk.file.path, chunk.file.sha256))
        },
    )
    return node_payload(node, meta)


def node_payload(node: Any, design: dict[str, Any] | None = None) -> dict[str, Any]:
    """A node's point payload: LlamaIndex's own `node_to_metadata_dict`, the design's keys (`design`, else
    decoded from the node's flat metadata) and `text`. The one payload builder for CLI and LlamaIndex writes."""
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    out = node_to_metadata_dict(node, remove_text=False, flat_metadata=False)
    out.update(design if design is not None else design_metadata(node.metadata))
    out["text"] = node.get_content(metadata_mode=MetadataMode.NONE)
    return out
