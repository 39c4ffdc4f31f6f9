"""Icons set inside a sentence: "touch [icon] to move the app up".

Manuals and help pages show buttons and symbols as pictures in the running text. Alone such an icon is
a speck (too small to be a figure, and dropped as decoration); the words around it are meaningless
without it. Each group of text lines holding inline icons becomes one region, so the captioner sees
the icons with their sentence. A picture at the start of a line with text only to its right is a
bullet or a "NOTE" badge, not an inline icon; page headers and footers are left alone.
"""

from __future__ import annotations

from caprl_index.figures import geometry as g
from caprl_index.figures.content import ImageBox, Line, PageContent
from caprl_index.models import BBox

MIN_ICON_SIDE = 6.0  # smaller pictures are specks
MAX_ICON_SIDE = 40.0  # bigger pictures are figures of their own (or not inline)
WORD_GAP = 24.0  # the text on either side of an inline icon is at most this far from it
ROW_GAP = 10.0  # rows of icon lines closer than this are one region


def icon_rows(content: PageContent, occupied: list[BBox]) -> list[BBox]:
    """Boxes of the text lines that hold inline icons, adjacent rows merged; none inside `occupied`
    (the page's figures)."""
    rows: list[BBox] = []
    for image in content.images:
        if not _icon_sized(image) or not content.in_body(image.bbox):
            continue
        if any(g.inside_fraction(image.bbox, box) > 0.5 for box in occupied):
            continue
        band = _inline_band(image.bbox, content.lines)
        if band:
            rows.append(g.union([image.bbox, *(ln.bbox for ln in band)]))
    return _merge_rows(rows)


def _icon_sized(image: ImageBox) -> bool:
    w, h = g.width(image.bbox), g.height(image.bbox)
    return min(w, h) >= MIN_ICON_SIDE and max(w, h) <= MAX_ICON_SIDE


def _inline_band(icon: BBox, lines: list[Line]) -> list[Line]:
    """The lines of the icon's sentence on its row when there are words on both sides of it, else
    nothing. Only lines chained to the icon by word gaps count: not the next column's text."""
    row = [ln for ln in lines if _same_row(ln.bbox, icon)]
    left = any(ln.bbox[2] <= icon[0] + 3 and icon[0] - ln.bbox[2] <= WORD_GAP for ln in row)
    right = any(ln.bbox[0] >= icon[2] - 3 and ln.bbox[0] - icon[2] <= WORD_GAP for ln in row)
    inside = any(ln.bbox[0] < icon[0] and ln.bbox[2] > icon[2] for ln in row)  # a gap left in one line
    if not ((left and right) or inside):
        return []
    span, band, rest = icon, [], sorted(row, key=lambda ln: ln.bbox[0])
    grown = True
    while grown:
        grown = False
        for line in rest:
            if line.bbox[0] - span[2] <= WORD_GAP and span[0] - line.bbox[2] <= WORD_GAP:
                band.append(line)
                span = g.union([span, line.bbox])
                rest.remove(line)
                grown = True
                break
    return band


def _same_row(line: BBox, icon: BBox) -> bool:
    overlap = min(line[3], icon[3]) - max(line[1], icon[1])
    return overlap >= 0.5 * min(g.height(line), g.height(icon))


def _merge_rows(rows: list[BBox]) -> list[BBox]:
    merged: list[BBox] = []
    for row in sorted(rows, key=lambda b: b[1]):
        near = next((i for i, m in enumerate(merged) if g.overlaps(g.expand(m, 0, ROW_GAP), row)), None)
        if near is None:
            merged.append(row)
        else:
            merged[near] = g.union([merged[near], row])
    return merged
