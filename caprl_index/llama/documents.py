"""Parsed pages → LlamaIndex Documents with the CLI's metadata, in the form flat-metadata stores accept.

- One text `Document` per page, one per figure (or captioned whole page: slides, scans). A figure whose crop
  is kept in the image store is an `ImageDocument` pointing at the crop (its bytes are read when a model
  needs them); `image_uri` names it relative to the image root and `page_image_uri` the page render, as on
  the CLI's points (the pipeline's own `evidence.keep` writes them, before any Document refers to them).
- Ids: a Document's id is the CLI's point id for that page text or figure (stable across runs, unique per
  file version). Its SOURCE is `document_id(path, sha256)`, so every node split from it, anywhere, shares
  the ref_doc_id the CLI gives every point of that file version.
- Metadata: the caller's `extra_info`, then ours (ours win: `file_path` is always the absolute path), made
  flat (`bbox` → `bbox_x0 … bbox_y1`, no `None`s). A model is shown file name, page and figure type only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import Document, ImageDocument, NodeRelationship, RelatedNodeInfo

from caprl_index.chunking import figure_text
from caprl_index.models import Caption, Chunk, ParsedPage, SourceFile
from caprl_index.store.payload import HIDDEN_KEYS, document_id, hidden_from_llm, metadata, node_metadata, point_id

if TYPE_CHECKING:
    from caprl_index.evidence import ImageStore


def page_chunks(src: SourceFile, page_count: int, parsed: ParsedPage, captions: list[Caption]) -> Iterator[Chunk]:
    """The page's text as one chunk, then one chunk per figure: splitting is the pipeline's job."""
    page = parsed.page
    body = "\n\n".join(t for t in (page.text.strip(), page.extra_text.strip()) if t)
    if body:
        yield Chunk(text=body, file=src, page_count=page_count, page=page, kind="text", chunk_index=0)
    for fig, cap in zip(parsed.figures, captions, strict=True):
        yield Chunk(
            text=figure_text(fig, cap, file_name=src.name, page_number=page.number, page_text=body),
            file=src,
            page_count=page_count,
            page=page,
            kind=fig.kind,
            chunk_index=0,
            figure=fig,
            caption=cap,
            region_index=fig.region_index,
        )


def document(chunk: Chunk, extra: dict[str, Any], images: ImageStore | None) -> Document:
    """The Document of one chunk (its images already kept); an ImageDocument for a figure with its crop."""
    ours = node_metadata(metadata(chunk))
    fields: dict[str, Any] = {
        "id_": point_id(chunk),
        "text": chunk.text,
        "metadata": node_metadata(extra) | ours,
        "excluded_embed_metadata_keys": list(HIDDEN_KEYS),
        "excluded_llm_metadata_keys": hidden_from_llm(ours),
        "relationships": {
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document_id(chunk.file.path, chunk.file.sha256))
        },
    }
    path = images.local_path(chunk.image_uri) if images is not None and chunk.image_uri else None
    if path is None or chunk.figure is None:
        return Document(**fields)
    return ImageDocument(**fields, image_path=str(path), image_mimetype=chunk.figure.mime)
