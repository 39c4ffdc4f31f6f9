"""Page renders for viewing: one WebP per page plus a thumbnail, made in the parser worker.

Rendered once at ingest, not on demand: the source file may be gone or changed by the time someone looks at
a hit, and a service answering from a stored image needs no PDF engine in its request path. A page is drawn
at VIEW_PIXELS (a letter page comes out about 740 x 950: body text stays readable) and its thumbnail at
THUMB_SIDE px on the long side. WebP at its fastest method: on the dev corpus method 4 took 2-5x longer to
encode for 5-8% fewer bytes, and rendering + encoding a page is the whole cost of keeping it (see README).
"""

from __future__ import annotations

import dataclasses
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caprl_index.config import Settings
    from caprl_index.models import ParsedPage
    from caprl_index.sources.base import PreparedDocument

VIEW_PIXELS = 700_000
THUMB_SIDE = 320
WEBP_QUALITY = 70
WEBP_METHOD = 0  # fastest; see the module docstring
MAX_ZOOM = 3.0  # a tiny page (a business card) is not blown up beyond this


def with_renders(doc: PreparedDocument, pages: list[ParsedPage], settings: Settings) -> list[ParsedPage]:
    """`pages` with their page render and thumbnail attached (unchanged when images are not kept, or when
    the document has nothing to render: a deck read from its XML)."""
    if not settings.keep_images or not pages or doc.render_path is None:
        return pages
    if doc.format == "image":
        return [_attach(p, image_frame(doc.render_path, p.page.number - 1)) for p in pages]
    from caprl_index.sources.pdf import open_pdf

    pdf = open_pdf(doc.render_path, doc.password)
    try:
        return [_attach(p, pdf_page_image(pdf[p.page.number - 1])) for p in pages]
    finally:
        pdf.close()


def _attach(parsed: ParsedPage, image: Any) -> ParsedPage:
    if image is None:
        return parsed
    view = encode_webp(image)
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return dataclasses.replace(parsed, render=view, thumb=encode_webp(thumb))


def pdf_page_image(page: Any) -> Any:
    import pymupdf
    from PIL import Image

    rect = page.rect
    zoom = min(MAX_ZOOM, (VIEW_PIXELS / max(rect.width * rect.height, 1.0)) ** 0.5)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
    return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)


def image_frame(path: str, index: int) -> Any:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.seek(index)
        frame = ImageOps.exif_transpose(image.copy()).convert("RGB")  # the orientation parsing used
    if frame.width * frame.height > VIEW_PIXELS:
        scale = (VIEW_PIXELS / (frame.width * frame.height)) ** 0.5
        frame = frame.resize((max(1, int(frame.width * scale)), max(1, int(frame.height * scale))))
    return frame


def encode_webp(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return out.getvalue()
