"""What figure detection reads from a page: text lines, image placements and vector paths.

Each is extracted once per page with PyMuPDF's cheapest call that carries what we need
(``get_text("dict")`` without image data, ``get_image_info``, ``get_cdrawings``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from caprl_index.models import BBox

_WHITE = 0.97
MARGIN_SHARE = 0.06  # page headers and footers live in the top and bottom 6% of the page


@dataclass(frozen=True)
class Line:
    """A text line with its block number and dominant font size."""

    text: str
    bbox: BBox
    block: int
    size: float
    bold: bool = False


@dataclass(frozen=True)
class ImageBox:
    """An image placed on the page."""

    bbox: BBox
    xref: int
    width: int  # pixels of the image itself
    height: int
    nbytes: int  # compressed size (0 when unknown, e.g. inline images)


@dataclass(frozen=True, slots=True)
class Path:
    """A vector path's bounding box: `stroke` for lines/outlines, `fill` for painted areas."""

    bbox: BBox
    fill: bool
    n_items: int
    outline: bool = False  # a stroked rectangle: only its edges are ink (a frame, a box around text)
    rect: bool = False  # a plain rectangle (bars, cell shading, frames) rather than a drawn shape
    ruling: bool = False  # stroked horizontal/vertical lines and box outlines only: table rules, frames


@dataclass
class PageContent:
    width: float
    height: float
    lines: list[Line] = field(default_factory=list)
    blocks: list[tuple[str, BBox]] = field(default_factory=list)
    images: list[ImageBox] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    @property
    def area(self) -> float:
        return self.width * self.height

    def in_body(self, bbox: BBox) -> bool:
        """Between the header and footer bands (top and bottom MARGIN_SHARE of the page)."""
        return MARGIN_SHARE * self.height <= bbox[1] and bbox[3] <= (1 - MARGIN_SHARE) * self.height

    @property
    def char_count(self) -> int:
        return sum(len(line.text) for line in self.lines)


def extract(page: Any, with_paths: bool = True) -> PageContent:
    """Read text lines, blocks, images and (optionally) vector paths of a pymupdf page."""
    rect = page.rect
    content = PageContent(width=rect.width, height=rect.height)
    _read_text(page, content)
    content.images = _read_images(page)
    if with_paths:
        content.paths = _read_paths(page, rect)
    return content


_GLYPH_LOCK = threading.Lock()


@contextmanager
def mupdf_glyph_boxes() -> Iterator[None]:
    """Text boxes measured the same way in every process: MuPDF's ascender/descender corrections on and
    normal glyph heights, PyMuPDF's defaults.

    Both are process-wide switches, and importing `pymupdf4llm` (which `import pymupdf` does whenever
    it is installed) turns the corrections off: line boxes then shrink by about a point, and detection
    found other figures in a process that had imported it (the LlamaIndex reader, the benchmarks) than in
    the parser workers, which never import it. The switches are set for the call and put back after, so
    a caller's own pymupdf4llm keeps its setting.
    """
    import pymupdf

    tools = pymupdf.TOOLS
    with _GLYPH_LOCK:
        skip, small = tools.unset_quad_corrections(), tools.set_small_glyph_heights()
        if not skip and not small:
            yield
            return
        tools.unset_quad_corrections(False)
        tools.set_small_glyph_heights(False)
        try:
            yield
        finally:
            tools.unset_quad_corrections(skip)
            tools.set_small_glyph_heights(small)


def _read_text(page: Any, content: PageContent) -> None:
    import pymupdf

    # Ligatures are expanded ("ﬁ" -> "fi"): kept, they split words for BM25 and the embedding tokenizer.
    flags = pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES & ~pymupdf.TEXT_PRESERVE_LIGATURES
    with mupdf_glyph_boxes():
        data = page.get_text("dict", flags=flags)
    for number, block in enumerate(data.get("blocks", ())):
        if block.get("type") != 0:
            continue
        texts: list[str] = []
        for line in block.get("lines", ()):
            spans = [s for s in line.get("spans", ()) if s.get("text", "").strip()]
            if not spans:
                continue
            text = "".join(s["text"] for s in line["spans"]).strip()
            main = max(spans, key=lambda s: len(s["text"]))
            bold = bool(main.get("flags", 0) & 16)
            content.lines.append(Line(text, tuple(line["bbox"]), number, float(main["size"]), bold))
            texts.append(text)
        if texts:
            content.blocks.append(("\n".join(texts), tuple(block["bbox"])))


def _read_images(page: Any) -> list[ImageBox]:
    return placed_images(page)


def placed_images(page: Any) -> list[ImageBox]:
    """Images shown on the page with their boxes and (when it can be told) their xref.

    ``get_image_info(xrefs=True)`` decodes every image to match it with its xref; instead the xref is
    found by the image's pixel size among the page's image resources, left 0 when ambiguous.
    """
    infos = page.get_image_info()
    if not infos:
        return []
    by_size: dict[tuple[int, int], list[int]] = {}
    for item in page.get_images(full=True):
        by_size.setdefault((int(item[2]), int(item[3])), []).append(int(item[0]))
    images: list[ImageBox] = []
    for info in infos:
        x0, y0, x1, y1 = info["bbox"]
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        size = (int(info.get("width") or 0), int(info.get("height") or 0))
        xrefs = by_size.get(size, [])
        xref = xrefs[0] if len(set(xrefs)) == 1 else 0
        images.append(ImageBox((x0, y0, x1, y1), xref, size[0], size[1], int(info.get("size") or 0)))
    return images


def _read_paths(page: Any, rect: Any) -> list[Path]:
    """The page's vector paths, read one at a time (MuPDF hands each to a callback): a page of 187,000
    map or scatter marks as one list of dicts held ~350 MB at once in the parser worker."""
    paths: list[Path] = []
    page_area = rect.width * rect.height

    def add(drawing: dict[str, Any]) -> None:
        x0, y0, x1, y1 = drawing["rect"]
        if x1 < rect.x0 or y1 < rect.y0 or x0 > rect.x1 or y0 > rect.y1:
            return  # off the page
        kind = drawing.get("type") or ""
        is_fill = "f" in kind
        if is_fill and "s" not in kind and _is_white(drawing.get("fill")):
            return  # invisible on a white page; page-sized white boxes would glue everything together
        if (x1 - x0) * (y1 - y0) > 0.6 * page_area:
            return  # page background
        items = drawing.get("items", ())
        is_rect = (len(items) == 1 and items[0][0] in ("re", "qu")) or _is_closed_box(items)
        ruling = not is_fill and _is_ruling(items, (x0, y0, x1, y1))
        paths.append(Path((x0, y0, x1, y1), is_fill, len(items), is_rect and not is_fill, is_rect, ruling))

    # The list form merges a fill and the stroke of the same path that follows it into one "fs" path;
    # with a callback MuPDF passes both: merge them the same way (one fill held back until the next path).
    held: list[dict[str, Any]] = []

    def read(drawing: dict[str, Any]) -> None:
        if held:
            fill = held.pop()
            if drawing.get("type") == "s" and fill.get("items") == drawing.get("items"):
                add({**drawing, **fill, "type": "fs"})
                return
            add(fill)
        if drawing.get("type") == "f":
            held.append(drawing)
        else:
            add(drawing)

    page.get_cdrawings(callback=read)
    if held:
        add(held.pop())
    return paths


def _is_ruling(items: Any, bbox: tuple[float, float, float, float]) -> bool:
    """Table rules and frames: rectangle outlines, lines of one direction (underlines), or long
    horizontal and vertical segments. A step curve (survival plots) is axis-parallel too, but made
    of short segments in both directions."""
    shares: list[float] = []
    horizontal = vertical = 0
    width, height = max(bbox[2] - bbox[0], 1e-3), max(bbox[3] - bbox[1], 1e-3)
    for item in items:
        if item[0] == "l":
            (ax, ay), (bx, by) = item[1], item[2]
            if abs(ax - bx) > 0.5 and abs(ay - by) > 0.5:
                return False  # a slanted segment: a drawing
            if abs(ay - by) <= 0.5:
                horizontal += 1
                shares.append(abs(ax - bx) / width)
            else:
                vertical += 1
                shares.append(abs(ay - by) / height)
        elif item[0] != "re":
            return False
    if not horizontal or not vertical:
        return True  # underlines or column separators only
    return sorted(shares)[len(shares) // 2] >= 0.25


def _is_closed_box(items: Any) -> bool:
    """Four axis-parallel line segments: a rectangle drawn as lines."""
    if len(items) != 4 or any(item[0] != "l" for item in items):
        return False
    return all(abs(a[0] - b[0]) < 0.5 or abs(a[1] - b[1]) < 0.5 for _, a, b in items)


def _is_white(color: Any) -> bool:
    return bool(color) and all(c >= _WHITE for c in color)
