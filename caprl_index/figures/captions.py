"""Text around a figure: its printed caption ("Figure 3: ...", a chart title), the blocks that belong
to it on the page (title, subtitle, caption, source note: its *extent*), and nearby context."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from caprl_index.figures import geometry as g
from caprl_index.figures.content import Line, PageContent
from caprl_index.models import BBox

CAPTION_START = re.compile(
    r"^\s*(fig(ure)?|chart|table|exhibit|graph|diagram|map|plate|illustration|abbildung)\.?\s*[\dA-Z]", re.I
)
BELOW_REACH = 60.0  # captions sit under a figure in most layouts ...
ABOVE_REACH = 45.0  # ... or above it (tables, report charts with a title)
MAX_CAPTION_CHARS = 600
TITLE_REACH = 30.0  # a title block ends at most this far above its chart
TITLE_LINE_CHARS = 90  # a one-line block in body type up to this long can be a title; longer is prose
MAX_TITLE_CHARS = 300
CONTEXT_REACH = 120.0
MAX_CONTEXT_CHARS = 500
# The figure's extent: what a reader takes in with the graphic, and what the captioner should see.
NOTE_START = re.compile(r"^\s*(sources?|notes?|(photo )?credits?)\s*[:.]", re.I)
FIRST_GAP = 30.0  # a title or caption block starts at most this far from the graphic ...
LABELLED_GAP = 36.0  # ... ("Figure 3:" captions may sit a little further off)
STACK_GAP = 12.0  # ... and the next block of it at most this far from the previous one
MAX_EXTENT_BLOCK = 300  # characters: an unlabelled block this long is body text
ALIGN = 20.0  # an unlabelled block sticks out of the graphic's columns by at most this much


def printed_caption(region: BBox, content: PageContent, inside: list[Line]) -> str:
    """The figure's printed caption: a 'Figure n' paragraph next to it, else a title line above it."""
    skip = {id(ln) for ln in inside}
    near = [ln for ln in content.lines if id(ln) not in skip and _h_overlap(ln.bbox, region)]
    labelled = [ln for ln in near if CAPTION_START.match(ln.text) and _gap(ln.bbox, region) <= BELOW_REACH]
    if labelled:
        first = min(labelled, key=lambda ln: _gap(ln.bbox, region))
        return _block_text(first, content)[:MAX_CAPTION_CHARS]
    labelled_inside = [ln for ln in inside if CAPTION_START.match(ln.text)]
    if labelled_inside:
        return _block_text(labelled_inside[0], content)[:MAX_CAPTION_CHARS]
    return _title_above(region, content) or _title_inside(inside)


def _title_above(region: BBox, content: PageContent) -> str:
    """Short blocks stacked right above the region: a chart's title and subtitle.

    A block of body text (body size, not bold) is a title only when it is one short line: the
    paragraph that ends above a photo is not its caption.
    """
    parts: list[str] = []
    top = region[1]
    body = _body_size(content)
    above = [b for b in _blocks(content) if b.bbox[3] <= region[1] + 2 and _h_overlap(b.bbox, region)]
    for block in sorted(above, key=lambda b: -b.bbox[3]):
        if top - block.bbox[3] > (TITLE_REACH if not parts else 12.0):
            break
        flat = " ".join(block.text.split())
        if len(flat) > MAX_TITLE_CHARS or not _title_like(block, body):
            break  # a paragraph of body text, not a title
        parts.insert(0, flat)
        top = block.bbox[1]
    return " ".join(parts)[:MAX_TITLE_CHARS]


def _title_like(block: _Block, body: float) -> bool:
    set_apart = block.bold or abs(block.size - body) >= 0.75
    one_line = g.height(block.bbox) <= 2.0 * max(block.size, 1.0) and len(block.text) <= TITLE_LINE_CHARS
    return set_apart or one_line


def _title_inside(inside: list[Line]) -> str:
    """The region's own top line when it reads like a title (words, not tick labels)."""
    for line in sorted(inside, key=lambda ln: ln.bbox[1])[:2]:
        words = line.text.split()
        if 2 <= len(words) <= 20 and sum(c.isalpha() for c in line.text) > len(line.text) / 2:
            return line.text.strip()
    return ""


@dataclass(frozen=True)
class _Block:
    number: int
    text: str
    bbox: BBox
    size: float
    bold: bool


def figure_extents(graphics: Sequence[BBox], content: PageContent, taken: set[int]) -> list[BBox]:
    """Each graphic grown over the blocks that belong to it: a title and subtitle stacked right above
    it, a caption, source line or note right below it.

    A block belongs to a figure when it is labelled ("Figure 3", "Source:") or set apart from body
    text (another size, or bold) and stays within the graphic's columns. Walking away from the graphic
    stops at the first block that does not belong, so body text is never taken, and at another
    figure's graphic; below, a "Figure n" caption ends the figure (only notes may follow). Graphics
    are served in the order given (top first), and a block goes to one figure only; blocks in `taken`
    (labels already inside a graphic) go to none.
    """
    body = _body_size(content)
    blocks = [b for b in _blocks(content) if content.in_body(b.bbox)]
    extents = []
    for index, graphic in enumerate(graphics):
        others = [other for i, other in enumerate(graphics) if i != index]
        near = [b for b in blocks if b.number not in taken and _h_overlap(b.bbox, graphic)]
        near = [b for b in near if g.inside_fraction(b.bbox, graphic) < 0.6]
        below = sorted((b for b in near if b.bbox[1] >= graphic[3] - 2), key=lambda b: b.bbox[1])
        above = sorted((b for b in near if b.bbox[3] <= graphic[1] + 2), key=lambda b: -b.bbox[3])
        extent = graphic
        for side, ordered in (("below", below), ("above", above)):
            for block in _stacked(side, ordered, graphic, body):
                grown = g.union([extent, block.bbox])
                if any(g.overlaps(grown, other) for other in others):
                    break
                extent = grown
                taken.add(block.number)
        extents.append(extent)
    return extents


def _stacked(side: str, ordered: list[_Block], graphic: BBox, body: float) -> Iterator[_Block]:
    """The blocks of `ordered` (nearest first) that stack onto the graphic on `side`."""
    edge = graphic[3] if side == "below" else graphic[1]
    first, closed = True, False
    for block in ordered:
        labelled = bool(CAPTION_START.match(block.text) or NOTE_START.match(block.text))
        if not labelled and not _aligned(block.bbox, graphic):
            continue  # another column's text flowing past the graphic
        gap = block.bbox[1] - edge if side == "below" else edge - block.bbox[3]
        reach = (LABELLED_GAP if labelled else FIRST_GAP) if first else STACK_GAP
        if gap > reach or not _belongs(block, body, labelled) or (closed and not NOTE_START.match(block.text)):
            return
        yield block
        edge = block.bbox[3] if side == "below" else block.bbox[1]
        first = False
        closed = closed or (side == "below" and bool(CAPTION_START.match(block.text)))


def _belongs(block: _Block, body: float, labelled: bool) -> bool:
    if labelled:
        return len(block.text) <= MAX_CAPTION_CHARS
    set_apart = block.bold or abs(block.size - body) >= 0.75
    return set_apart and len(block.text) <= MAX_EXTENT_BLOCK


def _aligned(bbox: BBox, graphic: BBox) -> bool:
    return bbox[0] >= graphic[0] - ALIGN and bbox[2] <= graphic[2] + ALIGN


def _blocks(content: PageContent) -> list[_Block]:
    grouped: dict[int, list[Line]] = {}
    for line in content.lines:
        grouped.setdefault(line.block, []).append(line)
    out = []
    for number, lines in grouped.items():
        chars = sum(len(ln.text) for ln in lines) or 1
        size = sum(ln.size * len(ln.text) for ln in lines) / chars
        text = " ".join(ln.text for ln in lines)
        out.append(_Block(number, text, g.union(ln.bbox for ln in lines), size, all(ln.bold for ln in lines)))
    return out


def _body_size(content: PageContent) -> float:
    """The font size most of the page's characters are set in."""
    chars: dict[float, int] = {}
    for line in content.lines:
        key = round(line.size * 2) / 2
        chars[key] = chars.get(key, 0) + len(line.text)
    return max(chars, key=lambda k: chars[k]) if chars else 0.0


def context_text(region: BBox, content: PageContent, exclude: list[Line], caption: str) -> str:
    """Nearby text (outside the region and its caption) from the figure's own column, closest first.

    A block must share at least half of the narrower one's width with the figure: the next column's
    text, beside the figure or above it, is about something else.
    """
    reach = g.expand(region, 40.0, CONTEXT_REACH)
    parts: list[str] = []
    blocks = sorted(content.blocks, key=lambda b: _gap(b[1], region))
    for text, bbox in blocks:
        if not g.overlaps(reach, bbox) or g.inside_fraction(bbox, region) > 0.5 or not _same_column(bbox, region):
            continue
        if caption and text.replace("\n", " ")[:40] in caption.replace("\n", " "):
            continue
        parts.append(" ".join(text.split()))
        if sum(len(p) for p in parts) >= MAX_CONTEXT_CHARS:
            break
    return " ".join(parts)[:MAX_CONTEXT_CHARS]


def _block_text(line: Line, content: PageContent) -> str:
    """The caption paragraph from `line` on: the rest of its block."""
    lines = [ln for ln in content.lines if ln.block == line.block and ln.bbox[1] >= line.bbox[1] - 1]
    return " ".join(" ".join(ln.text for ln in lines).split())


def _same_column(a: BBox, b: BBox) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) >= 0.5 * min(g.width(a), g.width(b))


def _h_overlap(a: BBox, b: BBox) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.2 * min(g.width(a), g.width(b))


def _gap(a: BBox, b: BBox) -> float:
    """Vertical distance between two boxes (0 when they overlap vertically)."""
    return max(0.0, a[1] - b[3], b[1] - a[3])
