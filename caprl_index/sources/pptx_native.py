"""Read a .pptx with python-pptx: slide text, tables, notes, pictures and native chart data.

This is the path without LibreOffice (no render, so no whole-slide caption): every picture becomes
a figure cropped from its own bytes (OCR'd when it is not a photo), every native chart a chart figure
with its exact values, and positions come from the shapes (EMU converted to points, group transforms
applied). With LibreOffice it still supplies the per-slide charts and notes (`deck_native`), which a
render cannot give exactly.

A chart's values are the chart figure's text, not the slide's: one point per piece of content. With
figures off they go to the slide's extra text instead, so they stay searchable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from caprl_index.errors import CorruptFile
from caprl_index.models import BBox, Figure, Page, ParsedPage, TextBlock
from caprl_index.sources.base import NativeChart
from caprl_index.sources.pptx_charts import ChartData, chart_text, parse_chart
from caprl_index.sources.pptx_figures import chart_figures
from caprl_index.sources.pptx_pictures import picture_figures, picture_sha1

EMU_PER_POINT = 12_700
DEFAULT_SIZE_PT = (720.0, 540.0)  # 10 x 7.5 in, PowerPoint's 4:3 default, when the deck omits it
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_DIAGRAM_URI = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_R_DM = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}dm"


@dataclass(frozen=True)
class _Transform:
    """Maps a shape's EMU coordinates (possibly inside groups) to slide points."""

    sx: float = 1 / EMU_PER_POINT
    sy: float = 1 / EMU_PER_POINT
    dx: float = 0.0
    dy: float = 0.0

    def box(self, left: int, top: int, width: int, height: int) -> BBox:
        x0, y0 = left * self.sx + self.dx, top * self.sy + self.dy
        return (x0, y0, x0 + width * self.sx, y0 + height * self.sy)


def open_presentation(path: str) -> Any:
    """Open a deck with python-pptx; any parse failure is a `CorruptFile` naming the cause."""
    from pptx import Presentation

    try:
        return Presentation(path)
    except Exception as exc:  # python-pptx surfaces zip, XML and KeyError failures alike
        raise CorruptFile(path, f"python-pptx cannot read the deck ({type(exc).__name__}: {exc})") from None


def deck_native(path: str, figures: bool = True) -> tuple[tuple[str, tuple[NativeChart, ...]], ...]:
    """Per slide: the extra text (speaker notes; chart data too when `figures` is off) and the
    native charts, for a deck LibreOffice renders."""
    out = []
    for slide in open_presentation(path).slides:
        charts = native_charts(slide)
        out.append((_extra_text(slide, () if figures else charts), charts))
    return tuple(out)


def slide_charts(slide: Any) -> list[ChartData]:
    """The native charts of a python-pptx slide in document order, groups included; a chart whose
    part is missing or malformed is skipped (the rest of the slide still counts)."""
    return [chart for chart, _ in _charts_with_boxes(slide)]


def native_charts(slide: Any) -> tuple[NativeChart, ...]:
    """The slide's native charts with their frames and their data as text."""
    return tuple(NativeChart(box, chart.title or "", chart_text(chart)) for chart, box in _charts_with_boxes(slide))


def _charts_with_boxes(slide: Any) -> list[tuple[ChartData, BBox | None]]:
    charts = []
    for shape, transform in _walk(slide.shapes, _Transform()):
        if getattr(shape, "has_chart", False) and shape.has_chart:
            try:
                charts.append((parse_chart(shape.chart.element), _xfrm_box(shape._element, transform)))
            except Exception:  # python-pptx raises KeyError/ValueError/XML errors for broken parts
                continue
    return charts


def parse_presentation(path: str, max_pixels: int, *, ocr: bool = True, figures: bool = True) -> tuple[ParsedPage, ...]:
    """Every slide as a `ParsedPage`: text blocks, extra text, picture figures (OCR'd when `ocr`,
    unless they are photos) and native chart figures."""
    prs = open_presentation(path)
    width, height = _slide_size(prs)
    slides = list(prs.slides)
    inherited: dict[tuple[str, int], BBox | None] = {}
    shapes = [_boxes(slide, inherited) for slide in slides]
    repeats = Counter(sha for items in shapes for sha in {picture_sha1(s) for s, _ in items} if sha)
    pages = []
    for number, (slide, items) in enumerate(zip(slides, shapes, strict=True), 1):
        charts = native_charts(slide)
        page = _page(slide, items, number, width, height, () if figures else charts)
        found: tuple[Figure, ...] = ()
        if figures:
            found = picture_figures(items, page, repeats, max_pixels, ocr=ocr)
            found += chart_figures(charts, page, max_pixels, first_index=len(found))
        pages.append(ParsedPage(page=page, figures=found))
    return tuple(pages)


def _slide_size(prs: Any) -> tuple[float, float]:
    if not prs.slide_width or not prs.slide_height:
        return DEFAULT_SIZE_PT
    return prs.slide_width / EMU_PER_POINT, prs.slide_height / EMU_PER_POINT


def _walk(shapes: Any, transform: _Transform) -> Iterator[tuple[Any, _Transform]]:
    """Leaf shapes in document order with the transform to slide points (groups flattened)."""
    for shape in shapes:
        if shape._element.tag == f"{_P}grpSp":
            yield from _walk(shape.shapes, _child_transform(shape, transform))
        else:
            yield shape, transform


def _boxes(slide: Any, inherited: dict[tuple[str, int], BBox | None]) -> list[tuple[Any, BBox | None]]:
    """Leaf shapes with their boxes; placeholders without a position of their own take their
    layout's, looked up once per layout. The XML is read directly: python-pptx's properties run an
    XPath query per attribute, which dominated the parse of large decks."""
    layout = str(slide.slide_layout.part.partname)
    items = []
    for shape, transform in _walk(slide.shapes, _Transform()):
        box = _xfrm_box(shape._element, transform)
        ph = _placeholder(shape._element)
        if box is None and ph is not None:
            key = (layout, int(ph.get("idx", "0")))
            if key not in inherited:
                inherited[key] = _inherited_box(shape)
            box = inherited[key]
        items.append((shape, box))
    return items


def _xfrm_box(element: Any, transform: _Transform) -> BBox | None:
    xfrm = element.find(f"{_P}xfrm")  # graphic frames (charts, tables)
    if xfrm is None:
        sp_pr = element.find(f"{_P}spPr")
        xfrm = sp_pr.find(f"{_A}xfrm") if sp_pr is not None else None
    off = xfrm.find(f"{_A}off") if xfrm is not None else None
    ext = xfrm.find(f"{_A}ext") if xfrm is not None else None
    if off is None or ext is None:
        return None
    try:
        return transform.box(int(off.get("x")), int(off.get("y")), int(ext.get("cx")), int(ext.get("cy")))
    except (TypeError, ValueError):  # a missing or non-integer coordinate
        return None


def _inherited_box(shape: Any) -> BBox | None:
    try:
        left, top, width, height = shape.left, shape.top, shape.width, shape.height
    except Exception:  # a placeholder whose layout lost its position
        return None
    if None in (left, top, width, height):
        return None
    return _Transform().box(left, top, width, height)


def _placeholder(element: Any) -> Any:
    """The ``p:ph`` element of a shape (first child is its ``p:nv*Pr``), or None."""
    nv = element[0] if len(element) else None
    nv_pr = nv.find(f"{_P}nvPr") if nv is not None else None
    return nv_pr.find(f"{_P}ph") if nv_pr is not None else None


def _child_transform(group: Any, parent: _Transform) -> _Transform:
    """Group children live in the group's child space (chOff/chExt) scaled onto its off/ext."""
    xfrm = group._element.grpSpPr.find(f"{_A}xfrm")
    if xfrm is None:
        return parent
    off, ext = xfrm.find(f"{_A}off"), xfrm.find(f"{_A}ext")
    ch_off, ch_ext = xfrm.find(f"{_A}chOff"), xfrm.find(f"{_A}chExt")
    if off is None or ext is None or ch_off is None or ch_ext is None:
        return parent
    kx = int(ext.get("cx")) / int(ch_ext.get("cx")) if int(ch_ext.get("cx") or 0) else 1.0
    ky = int(ext.get("cy")) / int(ch_ext.get("cy")) if int(ch_ext.get("cy") or 0) else 1.0
    # child x -> group space: off.x + (x - chOff.x) * kx, then the parent's mapping.
    dx = parent.dx + (int(off.get("x")) - int(ch_off.get("x")) * kx) * parent.sx
    dy = parent.dy + (int(off.get("y")) - int(ch_off.get("y")) * ky) * parent.sy
    return _Transform(sx=parent.sx * kx, sy=parent.sy * ky, dx=dx, dy=dy)


# --- text ----------------------------------------------------------------------------------------


def _page(
    slide: Any,
    items: list[tuple[Any, BBox | None]],
    number: int,
    width: float,
    height: float,
    charts: tuple[NativeChart, ...],
) -> Page:
    full = (0.0, 0.0, width, height)
    texts = ((_shape_text(shape, slide), box) for shape, box in _reading_order(items))
    blocks = [TextBlock(text, box or full) for text, box in texts if text]
    return Page(
        number=number,
        width=width,
        height=height,
        text="\n".join(b.text for b in blocks),
        blocks=tuple(blocks),
        extra_text=_extra_text(slide, charts),
    )


def _reading_order(items: list[tuple[Any, BBox | None]]) -> list[tuple[Any, BBox | None]]:
    """Titles first, then top-to-bottom, left-to-right (rows bucketed so a line's shapes stay together)."""

    def key(item: tuple[Any, BBox | None]) -> tuple[int, float, float]:
        shape, box = item
        x0, y0 = (box[0], box[1]) if box else (0.0, 0.0)
        return (0 if _is_title(shape) else 1, round(y0 / 12), x0)

    return sorted(items, key=key)


def _is_title(shape: Any) -> bool:
    ph = _placeholder(shape._element)
    return ph is not None and ph.get("type") in ("title", "ctrTitle")


def _shape_text(shape: Any, slide: Any) -> str:
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return "\n".join(p.text.strip() for p in shape.text_frame.paragraphs if p.text.strip())
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = (" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows)
        return "\n".join(row for row in rows if row.strip(" |"))
    return _diagram_text(shape, slide)


def _diagram_text(shape: Any, slide: Any) -> str:
    """SmartArt keeps its words in a diagram data part that python-pptx does not model."""
    element = shape._element
    data = element.find(f".//{_A}graphicData")
    if data is None or data.get("uri") != _DIAGRAM_URI:
        return ""
    ids = next((el for el in data.iter() if el.get(_R_DM)), None)
    if ids is None:
        return ""
    try:
        part = slide.part.related_part(ids.get(_R_DM))
        if part.partname and part.content_type.endswith("diagramData+xml"):
            from lxml import etree

            parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
            root = etree.fromstring(part.blob, parser)
            return "\n".join(t.text.strip() for t in root.iter(f"{_A}t") if t.text and t.text.strip())
    except Exception:  # a broken SmartArt part loses its words, not the slide
        return ""
    return ""


def _extra_text(slide: Any, charts: tuple[NativeChart, ...]) -> str:
    """Speaker notes, after the data of `charts` (those not indexed as figures)."""
    parts = [chart.text for chart in charts]
    notes = _notes(slide)
    if notes:
        parts.append(f"Speaker notes: {notes}")
    return "\n".join(parts)


def _notes(slide: Any) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return " ".join(frame.text.split()) if frame is not None else ""
