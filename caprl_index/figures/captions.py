"""Text around a figure: its printed caption ("Figure 3: ...", a chart title) and nearby context."""

from __future__ import annotations

import re

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
MAX_TITLE_CHARS = 300
CONTEXT_REACH = 120.0
MAX_CONTEXT_CHARS = 500


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
    """Short blocks stacked right above the region: a chart's title and subtitle."""
    parts: list[str] = []
    top = region[1]
    above = [b for b in content.blocks if b[1][3] <= region[1] + 2 and _h_overlap(b[1], region)]
    for text, bbox in sorted(above, key=lambda b: -b[1][3]):
        if top - bbox[3] > (TITLE_REACH if not parts else 12.0):
            break
        flat = " ".join(text.split())
        if len(flat) > MAX_TITLE_CHARS:
            break  # a paragraph of body text, not a title
        parts.insert(0, flat)
        top = bbox[1]
    return " ".join(parts)[:MAX_TITLE_CHARS]


def _title_inside(inside: list[Line]) -> str:
    """The region's own top line when it reads like a title (words, not tick labels)."""
    for line in sorted(inside, key=lambda ln: ln.bbox[1])[:2]:
        words = line.text.split()
        if 2 <= len(words) <= 20 and sum(c.isalpha() for c in line.text) > len(line.text) / 2:
            return line.text.strip()
    return ""


def context_text(region: BBox, content: PageContent, exclude: list[Line], caption: str) -> str:
    """Nearby text (outside the region and its caption), closest blocks first."""
    reach = g.expand(region, 40.0, CONTEXT_REACH)
    parts: list[str] = []
    blocks = sorted(content.blocks, key=lambda b: _gap(b[1], region))
    for text, bbox in blocks:
        if not g.overlaps(reach, bbox) or g.inside_fraction(bbox, region) > 0.5:
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


def _h_overlap(a: BBox, b: BBox) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.2 * min(g.width(a), g.width(b))


def _gap(a: BBox, b: BBox) -> float:
    """Vertical distance between two boxes (0 when they overlap vertically)."""
    return max(0.0, a[1] - b[3], b[1] - a[3])
