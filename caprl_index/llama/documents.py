"""Parsed pages → LlamaIndex Documents with the CLI's metadata, in the form flat-metadata stores accept.

- One text `Document` per page, one per figure (or captioned whole page: slides, scans). A figure whose crop
  is kept in the image store is an `ImageDocument` pointing at the crop (its bytes are read when a model
  needs them); `image_uri` names it relative to the image root, as on the CLI's points.
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
            text=figure_text(fig, cap, file_name=src.name, page_number=page.number),
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
    """The Document of one chunk; an ImageDocument for a figure whose crop the image store holds."""
    ours = node_metadata(metadata(chunk))
    crop = _keep_crop(chunk, images)
    if crop is not None:
        ours["image_uri"] = crop[0]
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
    if crop is None or crop[1] is None:
        return Document(**fields)
    assert chunk.figure is not None
    return ImageDocument(**fields, image_path=crop[1], image_mimetype=chunk.figure.mime)


def _keep_crop(chunk: Chunk, images: ImageStore | None) -> tuple[str, str | None] | None:
    """The crop's URI and local file, written to the image store first (a Document never points at nothing)."""
    fig = chunk.figure
    if fig is None or images is None:
        return None
    from caprl_index.evidence import crop_key

    uri = images.put(crop_key(fig.image_sha256, fig.mime), fig.image)
    path = images.local_path(uri)
    return uri, str(path) if path is not None else None
