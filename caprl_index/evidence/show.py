"""`caprl-index show`: the image behind a hit, as a PNG: the crop, or the page with the hit's box drawn.

The page image is the render kept at ingest; when none was kept (images off, an index of an older release)
the page is rendered from the source file, if that file is still there unchanged. A deck read without
LibreOffice has no page render at all: that is said plainly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caprl_index.errors import ConfigError

if TYPE_CHECKING:
    from caprl_index.evidence.store import ImageStore
    from caprl_index.store import StoredPoint

BOX_COLOUR = (228, 0, 43)  # a red that stands out on charts and photos alike
BOX_WIDTH = 4  # pixels


@dataclass(frozen=True)
class PageView:
    """One page to show: where its image comes from and the boxes to draw (PDF points)."""

    file_path: str
    file_sha256: str
    page: int
    page_width: float
    page_height: float
    page_image_uri: str | None
    boxes: tuple[tuple[float, float, float, float], ...]


def view_of(point: StoredPoint) -> PageView:
    """The page of one hit, with the hit's box (a text hit: no box)."""
    p = point.payload
    bbox = p.get("bbox") if p.get("kind") == "figure" else None
    return PageView(
        p["file_path"], p["file_sha256"], int(p["page"]), float(p["page_width"]), float(p["page_height"]),
        p.get("page_image_uri"), (tuple(bbox),) if bbox else (),
    )  # fmt: skip


def view_of_page(points: list[StoredPoint], file_path: str, page: int) -> PageView:
    """A page with every figure found on it outlined."""
    if not points:
        raise ConfigError(f"{file_path} page {page} is not in the index: check the path and page (1-based)")
    first = view_of(points[0])
    boxes = {tuple(p.payload["bbox"]) for p in points if p.payload.get("kind") == "figure" and p.payload.get("bbox")}
    uri = next((p.payload["page_image_uri"] for p in points if p.payload.get("page_image_uri")), None)
    return PageView(file_path, first.file_sha256, page, first.page_width, first.page_height, uri, tuple(sorted(boxes)))


def crop_png(point: StoredPoint, images: ImageStore | None) -> bytes:
    """The exact crop the captioner saw, as PNG."""
    uri = point.payload.get("image_uri")
    if point.payload.get("kind") not in ("figure", "page"):
        raise ConfigError(f"point {point.id} is page text, which has no crop: show it without --crop")
    if not uri or images is None or not images.exists(uri):
        raise ConfigError(f"point {point.id} has no kept crop (images were not kept when it was ingested)")
    return _to_png(_open(images.read(uri)))


def page_png(view: PageView, images: ImageStore | None) -> bytes:
    """The page image with the view's boxes drawn, as PNG."""
    image = _page_image(view, images)
    return _to_png(draw_boxes(image, view.boxes, view.page_width, view.page_height))


def draw_boxes(
    image: Any, boxes: tuple[tuple[float, float, float, float], ...], width_pt: float, height_pt: float
) -> Any:
    """`image` (a render of a width_pt x height_pt page) with each box (PDF points) outlined."""
    from PIL import ImageDraw

    out = image.convert("RGB")
    sx, sy = out.width / width_pt, out.height / height_pt
    draw = ImageDraw.Draw(out)
    w = BOX_WIDTH  # drawn just outside the box, so the outline covers none of the figure
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0 * sx - w, y0 * sy - w, x1 * sx + w, y1 * sy + w), outline=BOX_COLOUR, width=w)
    return out


def _page_image(view: PageView, images: ImageStore | None) -> Any:
    if view.page_image_uri and images is not None and images.exists(view.page_image_uri):
        return _open(images.read(view.page_image_uri))
    return _render_source(view)


def _render_source(view: PageView) -> Any:
    from caprl_index.evidence.render import image_frame, pdf_page_image
    from caprl_index.sources import sniff
    from caprl_index.sources.discover import sha256_file

    path = Path(view.file_path)
    if path.suffix.lower() in (".pptx", ".ppt", ".odp", ".key"):
        raise ConfigError(
            f"{view.file_path}: no page image: this deck was read without LibreOffice, so its slides were never "
            "rendered. Install libreoffice-impress and ingest it again (`ingest --force`) to get slide images."
        )
    if not path.is_file() or sha256_file(path) != view.file_sha256:
        raise ConfigError(
            f"{view.file_path}: no page image was kept and the file is gone or changed since it was indexed; "
            "ingest it again with images kept (CAPRL_KEEP_IMAGES=true)"
        )
    with open(path, "rb") as fh:
        kind = sniff(fh.read(1024))
    if kind == "image":
        return image_frame(str(path), view.page - 1)
    from caprl_index.sources.pdf import open_pdf

    pdf = open_pdf(path)
    try:
        return pdf_page_image(pdf[view.page - 1])
    finally:
        pdf.close()


def _open(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _to_png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
