"""The words inside a rendered slide's pictures: screenshots, and charts or tables pasted as images.

A slide is captioned whole; without a captioner its page point has only the slide's text layer, and
a picture's words are in its pixels. Each picture big enough to hold text, not a photo, not a native
chart (its data is exact already) and not already covered by the text layer is rendered and OCR'd.
Small pictures (logos, icons, bullets) are left alone: a logo repeated on every slide would add its
name to every slide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from caprl_index.config import Settings
from caprl_index.figures import geometry as g
from caprl_index.figures.classify import looks_like_photo
from caprl_index.figures.content import PageContent
from caprl_index.figures.crop import pixmap_to_pil, render_region
from caprl_index.models import BBox

MIN_SHARE = 0.03  # of the slide: smaller pictures are logos and icons
MIN_SIDE = 40.0  # points
COVERED_WORDS = 3  # text-layer words over a picture: its text is there already (text on a backdrop)


def slide_picture_text(page: Any, content: PageContent, charts: Sequence[BBox | None], settings: Settings) -> str:
    """OCR text of the slide's pictures that may hold words, one picture after the other."""
    if not settings.figure_ocr:
        return ""
    from caprl_index.sources.ocr import ocr_text

    texts: list[str] = []
    for box in _picture_boxes(content, [c for c in charts if c is not None]):
        image = pixmap_to_pil(render_region(page, box, settings.max_pixels))
        if not looks_like_photo(image):
            texts.append(ocr_text(image))
    return "\n".join(t for t in texts if t)


def _picture_boxes(content: PageContent, charts: list[BBox]) -> list[BBox]:
    page: BBox = (0.0, 0.0, content.width, content.height)
    seen: set[tuple[int, int, int, int]] = set()
    boxes = []
    for image in content.images:
        box = g.clip(image.bbox, page)
        key = (round(box[0]), round(box[1]), round(box[2]), round(box[3]))
        if key in seen or min(g.width(box), g.height(box)) < MIN_SIDE or g.area(box) < MIN_SHARE * content.area:
            continue
        seen.add(key)
        if any(g.inside_fraction(box, chart) > 0.5 for chart in charts):
            continue  # LibreOffice may draw a native chart's fallback picture
        words = sum(len(ln.text.split()) for ln in content.lines if g.inside_fraction(ln.bbox, box) > 0.6)
        if words < COVERED_WORDS:
            boxes.append(box)
    return boxes
