"""Figure detection: find charts, infographics, diagrams, photos and tables-as-images on a page.

    image_repeats(doc)                    logos and repeated pictures, once per document (furniture.py)
    extract(page) -> PageContent          text lines, image placements, vector paths      (content.py)
    find_regions(content) -> [Region]     drawings (ink.py) + pictures, grown by labels,
                                          merged into panels, filtered                    (regions.py)
    page_figures(page, content, ...)      crops rendered within the pixel budget (crop.py), typed
                                          (classify.py), captioned (captions.py), OCR'd -> [Figure]

A slide or a scan is one Figure(kind="page") of the whole page: see `whole_page_figure`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from caprl_index.figures import geometry as g
from caprl_index.figures.captions import context_text, printed_caption
from caprl_index.figures.classify import classify_region
from caprl_index.figures.content import PageContent, extract
from caprl_index.figures.crop import Crop, encode_pixmap, pixmap_to_pil, render_region
from caprl_index.figures.ink import glyph_paths
from caprl_index.figures.regions import Region, find_regions
from caprl_index.models import BBox, Figure

__all__ = ["DETECTION_VERSION", "PageContent", "Region", "extract", "find_regions", "page_figures", "whole_page_figure"]

MIN_TEXT_WORDS = 3  # fewer words than this in the text layer inside a region: OCR it ...
MIN_GLYPHS = 8  # ... when it is a picture, or holds this many letter-like outlines (labels without text)
# Bumped whenever splitting or detection changes what a page yields (part of each file's fingerprint, so
# an upgrade re-indexes files). 2: extents with title/caption/source note; inline-icon rows; ligatures
# expanded in the text. 3: OCR with word boundaries, of outlined labels and slide pictures; native
# charts as figures; captions and nearby text from the figure's own column; figure types. 4: names,
# acronyms and hashtags kept whole by OCR's word boundaries; text boxes independent of pymupdf4llm's import.
DETECTION_VERSION = 4


def page_figures(
    page: Any,
    content: PageContent,
    max_pixels: int,
    skip_xrefs: Collection[int] = (),
    ocr: bool = True,
    first_index: int = 0,
) -> list[Figure]:
    """Detect, render and describe the figures of one page.

    `skip_xrefs` are images not to index here (page furniture, images first shown on an earlier
    page). The region index is the region's position on the page, so it is the same on every run.
    """
    figures: list[Figure] = []
    seen: set[str] = set()
    for index, region in enumerate(find_regions(content, skip_xrefs), start=first_index):
        figure = _make_figure(page, content, region, max_pixels, index, ocr)
        if figure.image_sha256 not in seen:  # the same picture placed twice on one page
            seen.add(figure.image_sha256)
            figures.append(figure)
    return figures


def _make_figure(page: Any, content: PageContent, region: Region, max_pixels: int, index: int, ocr: bool) -> Figure:
    graphic = region.bbox
    bbox = _round(region.extent or graphic)  # the crop shows the graphic with its title and caption
    pix = render_region(page, bbox, max_pixels)
    image = _sub_image(pixmap_to_pil(pix), bbox, graphic)  # typed and OCR'd without its caption
    inside = [ln for ln in content.lines if g.inside_fraction(ln.bbox, graphic) > 0.6]
    texts = [ln.text for ln in inside]
    text = "\n".join(texts)
    figure_type = classify_region(region, image, texts)
    if ocr and _needs_ocr(region, content, figure_type, texts):
        # A picture without a text layer (a raster chart, a table image), or a drawing whose labels
        # are outlines: read its pixels.
        from caprl_index.sources.ocr import lines_to_text, ocr_image

        lines = ocr_image(image)
        text = lines_to_text(lines)
        figure_type = classify_region(region, image, [line.text for line in lines])
    crop = encode_pixmap(pix, photo=figure_type == "photo")
    caption = printed_caption(graphic, content, inside)
    context = context_text(graphic, content, inside, caption)
    return _figure("figure", figure_type, bbox, crop, index, caption, context, text)


def _needs_ocr(region: Region, content: PageContent, figure_type: str, texts: list[str]) -> bool:
    """No usable text layer inside, and pixels that may hold some: a picture with fewer than
    MIN_TEXT_WORDS words over it, or a drawing with more letter-shaped outlines than text-layer
    letters. Where the text layer covers the region OCR is skipped: it would only repeat it, at
    ~0.3 s a crop."""
    if region.images:
        return figure_type != "photo" and len(" ".join(texts).split()) < MIN_TEXT_WORDS
    # Outlined labels: more letter shapes than the text layer has letters (a chart whose title is
    # text but whose ticks and values are outlines still needs reading).
    glyphs = glyph_paths(content.paths, region.bbox)
    return glyphs >= MIN_GLYPHS and glyphs > 2 * sum(len(t) for t in texts)


def _sub_image(image: Any, shown: BBox, part: BBox) -> Any:
    """The pixels of `part` in an image of the region `shown`."""
    if g.inside_fraction(shown, part) > 0.999:
        return image
    sx, sy = image.width / max(g.width(shown), 1e-6), image.height / max(g.height(shown), 1e-6)
    box = (
        max(0, int((part[0] - shown[0]) * sx)),
        max(0, int((part[1] - shown[1]) * sy)),
        min(image.width, round((part[2] - shown[0]) * sx)),
        min(image.height, round((part[3] - shown[1]) * sy)),
    )
    return image.crop(box) if box[2] > box[0] and box[3] > box[1] else image


def whole_page_figure(
    page: Any,
    figure_type: str,
    max_pixels: int,
    caption: str = "",
    context: str = "",
    ocr_text: str = "",
    pix: Any | None = None,
) -> Figure:
    """One Figure(kind="page") of the whole page (a slide, a scan); `pix` reuses a render at the budget."""
    rect = page.rect
    bbox = (rect.x0, rect.y0, rect.x1, rect.y1)
    pix = pix if pix is not None else render_region(page, bbox, max_pixels)
    crop = encode_pixmap(pix, photo=figure_type == "photo")
    return _figure("page", figure_type, _round(bbox), crop, 0, caption, context, ocr_text)


def _figure(
    kind: str, figure_type: str, bbox: BBox, crop: Crop, index: int, caption: str, context: str, text: str
) -> Figure:
    return Figure(
        kind=kind,  # type: ignore[arg-type]
        figure_type=figure_type,
        bbox=bbox,
        image=crop.data,
        mime=crop.mime,
        image_sha256=crop.sha256,
        region_index=index,
        printed_caption=caption,
        context_text=context,
        ocr_text=text,
    )


def _round(bbox: BBox) -> BBox:
    return (round(bbox[0], 2), round(bbox[1], 2), round(bbox[2], 2), round(bbox[3], 2))
