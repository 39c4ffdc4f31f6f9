"""PDF documents: open and validate (``prepare_pdf``), then parse page ranges (``parse_pdf_pages``).

A page is parsed once: its text (blocks in the PDF's reading order), then figure detection on the
same extracted content. Pages that are one big picture with no text (scans, decks saved as images)
are OCR'd and become one Figure(kind="page").
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile, EncryptedFile
from caprl_index.figures import extract, find_regions, page_figures, whole_page_figure
from caprl_index.figures import geometry as g
from caprl_index.figures.classify import classify_pixels
from caprl_index.figures.content import ImageBox, PageContent
from caprl_index.figures.crop import pixmap_to_pil, render_region
from caprl_index.figures.furniture import image_repeats
from caprl_index.models import BBox, Page, ParsedPage, SourceFile, TextBlock
from caprl_index.sources.base import PreparedDocument
from caprl_index.sources.pptx_figures import rendered_chart_figures
from caprl_index.sources.slide_pictures import slide_picture_text

log = logging.getLogger(__name__)

SCAN_IMAGE_SHARE = 0.6  # one image covering this share of a page with no text: a scan
SCAN_MAX_CHARS = 20
BACKDROP_SHARE = 0.85  # pictures covering this much under a text layer: the page is captioned whole
TILE_SHARE = 0.01  # images smaller than this share of the page are not tiles of a page picture


def open_pdf(path: str | Path, password: str | None = None, stream: bytes | None = None) -> Any:
    """Open a PDF with PyMuPDF, mapping its failures to DocumentError subclasses."""
    import pymupdf

    try:
        doc = pymupdf.open(stream=stream, filetype="pdf") if stream is not None else pymupdf.open(path, filetype="pdf")
    except pymupdf.EmptyFileError:
        raise CorruptFile(str(path), "the PDF is empty (0 bytes); re-export or re-download it") from None
    except (pymupdf.FileDataError, RuntimeError, ValueError) as exc:
        raise CorruptFile(str(path), f"not a readable PDF ({exc}); re-export or re-download it") from None
    if doc.needs_pass and not doc.authenticate(password or ""):
        doc.close()
        raise EncryptedFile(str(path), "the PDF is password-protected; remove the password (e.g. `qpdf --decrypt`)")
    return doc


def prepare_pdf(file: SourceFile, settings: Settings, workdir: Path) -> PreparedDocument:
    """Validate a PDF, count its pages and find images not to index twice (furniture, repeats)."""
    import pymupdf

    pymupdf.TOOLS.mupdf_warnings()  # drop warnings left by earlier files
    doc = open_pdf(file.path)
    try:
        count = doc.page_count
        if count == 0:
            raise CorruptFile(file.path, "the PDF has no pages; re-export it")
        warnings: list[str] = []
        try:
            doc[count - 1].get_text("text")  # a truncated file usually fails on its last page
        except (RuntimeError, ValueError) as exc:
            raise CorruptFile(file.path, f"the PDF is damaged or truncated ({exc}); re-download it") from None
        if doc.is_repaired:
            if not _has_content(doc):
                raise CorruptFile(file.path, "the PDF is truncated or damaged beyond repair; re-download it")
            warnings.append(f"{file.path}: the PDF is damaged and was repaired; some content may be missing")
        furniture, first_pages = image_repeats(doc)
    finally:
        doc.close()
    return PreparedDocument(
        file=file,
        page_count=count,
        format="pdf",
        page_mode="document",
        render_path=file.path,
        warnings=tuple(warnings),
        furniture_xrefs=tuple(sorted(furniture)),
        image_first_page=tuple(sorted(first_pages.items())),
    )


def _has_content(doc: Any, limit: int = 50) -> bool:
    """Does any of the first `limit` pages draw anything (text, image, path)?"""
    for pno in range(min(doc.page_count, limit)):
        page = doc[pno]
        if page.get_text("text").strip() or page.get_images() or page.get_cdrawings():
            return True
    return False


def parse_pdf_pages(doc: PreparedDocument, start: int, stop: int, settings: Settings) -> list[ParsedPage]:
    """Parse pages start..stop-1 (0-based) of a prepared PDF (or a deck converted to PDF)."""
    assert doc.render_path is not None
    pdf = open_pdf(doc.render_path, doc.password)
    try:
        return [_parse_one(pdf[pno], pno, doc, settings) for pno in range(start, min(stop, doc.page_count))]
    finally:
        pdf.close()


def _parse_one(page: Any, pno: int, doc: PreparedDocument, settings: Settings) -> ParsedPage:
    try:
        content = extract(page, with_paths=settings.figures and doc.page_mode == "document")
    except (RuntimeError, ValueError) as exc:
        log.warning("%s: page %d cannot be read (%s); indexed empty", doc.file.path, pno + 1, exc)
        rect = page.rect
        return ParsedPage(Page(pno + 1, rect.width, rect.height, ""))
    if doc.page_mode == "slide":
        return _slide_page(page, pno, content, doc, settings)
    if _is_scan(content):
        return _scan_page(page, pno, content, doc, settings)
    record = _page_record(pno, content, doc)
    if not settings.figures:
        return ParsedPage(record)
    figures = []
    backdrop = _backdrop(content)
    if backdrop:
        # A page drawn over one page-sized picture (a scan with a text layer, a designed page):
        # caption the page whole, and still look for figures drawn on top of the picture.
        pix = _render_page(page, settings)
        kind = classify_pixels(pixmap_to_pil(pix))
        figures.append(whole_page_figure(page, kind, settings.max_pixels, ocr_text=record.text, pix=pix))
        content.images = _without(content.images, backdrop)
    skip = _skip_xrefs(doc, pno)
    figures += page_figures(
        page, content, settings.max_pixels, skip_xrefs=skip, ocr=settings.figure_ocr, first_index=len(figures)
    )
    return ParsedPage(record, tuple(figures))


def page_regions(page: Any, pno: int, doc: PreparedDocument, settings: Settings) -> list[tuple[str, BBox]]:
    """The (kind, bbox) regions `parse_pdf_pages` would index on a page, without rendering them."""
    rect = page.rect
    whole = (rect.x0, rect.y0, rect.x1, rect.y1)
    content = extract(page, with_paths=doc.page_mode == "document")
    if doc.page_mode == "slide" or _is_scan(content):
        return [("page", whole)]
    regions: list[tuple[str, BBox]] = []
    backdrop = _backdrop(content)
    if backdrop:
        regions.append(("page", whole))
        content.images = _without(content.images, backdrop)
    return regions + [("figure", r.extent or r.bbox) for r in find_regions(content, _skip_xrefs(doc, pno))]


def _backdrop(content: PageContent) -> list[ImageBox]:
    """The picture (or the tiles of one, as some scanners write it) covering nearly the whole page."""
    tiles = _page_pictures(content)
    covered = sum(g.area(i.bbox) for i in tiles)
    return tiles if covered >= BACKDROP_SHARE * content.area else []


def _without(images: list[ImageBox], removed: list[ImageBox]) -> list[ImageBox]:
    gone = {(i.xref, round(i.bbox[0]), round(i.bbox[1])) for i in removed}
    return [i for i in images if (i.xref, round(i.bbox[0]), round(i.bbox[1])) not in gone]


def _page_pictures(content: PageContent) -> list[ImageBox]:
    """Images big enough to be a page picture or a tile of one, clipped to the page."""
    page = (0.0, 0.0, content.width, content.height)
    clipped = [ImageBox(g.clip(i.bbox, page), i.xref, i.width, i.height, i.nbytes) for i in content.images]
    return [i for i in clipped if g.area(i.bbox) >= TILE_SHARE * content.area]


def _page_record(pno: int, content: PageContent, doc: PreparedDocument, ocr: str | None = None) -> Page:
    """The page record; `ocr` replaces the (missing) text layer of a scan."""
    blocks = tuple(TextBlock(t, _rounded(b)) for t, b in content.blocks)
    return Page(
        number=pno + 1,
        width=content.width,
        height=content.height,
        text=ocr if ocr is not None else "\n\n".join(t for t, _ in content.blocks),
        blocks=blocks,
        scanned=ocr is not None,
        extra_text=doc.extra_text(pno),
    )


def _is_scan(content: PageContent) -> bool:
    """No text layer and (mostly) pictures: a scanned page or a page saved as an image."""
    if content.char_count > SCAN_MAX_CHARS or not content.images:
        return False
    covered = sum(g.area(i.bbox) for i in _page_pictures(content))
    return covered >= SCAN_IMAGE_SHARE * content.area


def _render_page(page: Any, settings: Settings) -> Any:
    rect = page.rect
    return render_region(page, (rect.x0, rect.y0, rect.x1, rect.y1), settings.max_pixels)


def _scan_page(page: Any, pno: int, content: PageContent, doc: PreparedDocument, settings: Settings) -> ParsedPage:
    from caprl_index.sources.ocr import ocr_text

    pix = _render_page(page, settings)
    image = pixmap_to_pil(pix)
    text = ocr_text(image) if settings.ocr else ""
    record = _page_record(pno, content, doc, ocr=text)
    if not settings.figures:
        return ParsedPage(record)
    figure = whole_page_figure(page, classify_pixels(image), settings.max_pixels, ocr_text=text, pix=pix)
    return ParsedPage(record, (figure,))


def _slide_page(page: Any, pno: int, content: PageContent, doc: PreparedDocument, settings: Settings) -> ParsedPage:
    """A slide is captioned whole: one page figure with the slide's title, its text and the words in
    its pictures; each native chart is a chart figure of its own with its exact data."""
    pix = None
    record = _page_record(pno, content, doc)
    if not record.text.strip() and content.images and settings.ocr:  # a slide that is only a picture
        from caprl_index.sources.ocr import ocr_text

        pix = _render_page(page, settings)
        record = _page_record(pno, content, doc, ocr=ocr_text(pixmap_to_pil(pix)))
    if not settings.figures:
        return ParsedPage(record)
    charts = doc.charts(pno)
    pictures = slide_picture_text(page, content, [c.bbox for c in charts], settings) if pix is None else ""
    text = "\n".join(x for x in (record.text, record.extra_text, pictures) if x)
    figure = whole_page_figure(
        page, "slide", settings.max_pixels, caption=_slide_title(content), ocr_text=text, pix=pix
    )
    return ParsedPage(record, (figure, *rendered_chart_figures(page, charts, record, settings.max_pixels, 1)))


def _slide_title(content: PageContent) -> str:
    """The largest-font line in the top half of the slide."""
    top = [ln for ln in content.lines if ln.bbox[1] < content.height / 2]
    return max(top, key=lambda ln: ln.size).text if top else ""


def _skip_xrefs(doc: PreparedDocument, pno: int) -> Collection[int]:
    skip = set(doc.furniture_xrefs)
    skip.update(x for x, first in doc.image_first_page if first != pno)
    return skip


def _rounded(b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    return (round(b[0], 2), round(b[1], 2), round(b[2], 2), round(b[3], 2))


__all__ = ["open_pdf", "page_regions", "parse_pdf_pages", "prepare_pdf"]
