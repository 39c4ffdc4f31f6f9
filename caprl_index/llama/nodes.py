"""Nodes ↔ points: what `CapRLVectorStore` writes for a node, and the node a stored point reads back as.

A point read back is the node LlamaIndex stored in it (`_node_content`), so its id is the point id and its
metadata are the payload's own values. Figures whose crop is kept come back as `FigureNode`s pointing at
the crop in the image store; the image bytes are read only when a model is sent them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ImageBlock
from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, NodeWithScore, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from caprl_index.errors import CaprlError, ConfigError
from caprl_index.search import Hit
from caprl_index.store import NewPoint, StoredPoint
from caprl_index.store.payload import design_metadata, node_metadata, node_payload
from caprl_index.store.sparse import document_vector

if TYPE_CHECKING:
    from llama_index.core.schema import BaseContentBlock

    from caprl_index.evidence import ImageStore


class FigureNode(ImageNode):
    """An `ImageNode` whose content blocks include the image, so `RetrieverQueryEngine(multimodal=True)` and
    chat engines send the chart itself (LlamaIndex's own ImageNode contributes only its text)."""

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list[BaseContentBlock]:
        blocks = list(super().get_content_blocks(metadata_mode))
        if self.image_path or self.image_url or self.image:
            blocks.append(
                ImageBlock(
                    path=self.image_path,  # type: ignore[arg-type]
                    url=self.image_url,  # type: ignore[arg-type]
                    image=self.image.encode() if self.image else None,
                    image_mimetype=self.image_mimetype,
                )
            )
        return blocks


def node_to_point(node: BaseNode) -> NewPoint:
    """The point for a node: its embedding, our BM25 vector of its text, the payload payload.py builds."""
    if node.embedding is None:
        raise ConfigError(
            f"node {node.node_id} has no embedding: end the IngestionPipeline with an embedding model "
            "(CapRLEmbedding), or pass embed_model= to VectorStoreIndex"
        )
    _check_id(node.node_id)
    flat = node_metadata(node.metadata)
    if "file_path" not in flat or "page" not in flat:
        raise ConfigError(
            f"node {node.node_id} has no file_path/page metadata: the caprl-index store holds pages and figures "
            "of files; read them with CapRLReader, or set metadata file_path and page (1-based)"
        )
    stored = _storable(node, flat)
    design = design_metadata(flat)
    design["file_name"] = design["file_name"] or str(flat["file_path"]).rsplit("/", 1)[-1]
    design["kind"] = design["kind"] or ("figure" if isinstance(node, ImageNode) else "text")
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    return NewPoint(node.node_id, list(node.embedding), document_vector(text), node_payload(stored, design))


def point_to_node(point: StoredPoint, images: ImageStore | None = None) -> BaseNode:
    """The node stored in a point; a figure with a kept crop as a FigureNode (image path resolved locally)."""
    node = metadata_dict_to_node(point.payload)
    # The payload's top-level values, not the copies inside `_node_content`: Qdrant Edge reads floats back
    # one ulp off at times (959.9810791015625 -> ...24), and `search --json` prints the top-level ones.
    node.metadata = {k: point.payload.get(k, v) for k, v in node.metadata.items()}
    uri = point.payload.get("image_uri")
    if not uri or not isinstance(node, TextNode):
        return node
    found = _image_location(str(uri), images)
    if found is None:
        return node
    fields = {k: v for k, v in node.model_dump().items() if k not in ("class_name", "image", "mimetype")}
    return FigureNode(**(fields | found))


def to_hit(result: NodeWithScore) -> Hit:
    """A retrieved node as the CLI's `Hit` (`.as_json()` is a `search --json` object)."""
    meta = design_metadata(result.node.metadata)
    return Hit(
        id=result.node.node_id,
        score=float(result.score or 0.0),
        file_path=meta["file_path"] or "",
        file_name=meta["file_name"] or "",
        page=int(meta["page"] or 0),
        page_width=meta["page_width"],
        page_height=meta["page_height"],
        kind=meta["kind"] or "",
        figure_type=meta["figure_type"],
        bbox=meta["bbox"],
        caption_source=meta["caption_source"],
        caption_model=meta["caption_model"],
        image_uri=meta["image_uri"],
        page_image_uri=meta["page_image_uri"],
        text=result.node.get_content(metadata_mode=MetadataMode.NONE),
    )


def _storable(node: BaseNode, flat: dict[str, Any]) -> BaseNode:
    """A copy of the node with flat metadata and without inline image bytes when the image has a path or URL
    (base64 in every payload would multiply the index size; the image store keeps the crop once)."""
    update: dict[str, Any] = {"metadata": flat, "embedding": None}
    if isinstance(node, ImageNode) and node.image and (node.image_path or node.image_url):
        update["image"] = None
    return node.model_copy(update=update)


def _image_location(uri: str, images: ImageStore | None) -> dict[str, str] | None:
    if uri.startswith(("http://", "https://")):
        return {"image_url": uri}
    if images is None:
        return None
    try:
        path = images.local_path(uri)
    except CaprlError:  # a payload pointing outside the image folder is not followed
        return None
    return {"image_path": str(path)} if path is not None else None


def _check_id(node_id: str) -> None:
    try:
        uuid.UUID(node_id)
    except ValueError:
        raise ConfigError(
            f"node id {node_id!r} is not a UUID, which Qdrant point ids must be: let LlamaIndex assign node ids, "
            "or derive them with caprl_index.llama.stable_node_id"
        ) from None


def stable_node_id(i: int, doc: BaseNode) -> str:
    """`id_func` for LlamaIndex node parsers: the i-th node of a document always gets the same UUID, so a
    document processed again overwrites its nodes instead of adding copies."""
    from caprl_index.store.engine import NAMESPACE

    return str(uuid.uuid5(NAMESPACE, f"node:{doc.node_id}|{i}"))
