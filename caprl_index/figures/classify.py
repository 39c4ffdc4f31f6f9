"""Cheap figure-type heuristics: from what a region is made of and a thumbnail of its pixels.

No model: the captioner sees the image anyway; the type only helps filtering and search facets.
Measured on a labelled set of real figures (benchmarks/figure_types.py, labels in
benchmarks/data/figure_types.jsonl, definitions in docs/figure-types.md). In order:

- other: inline icons in a sentence; slivers (a margin strip, a banner); little ink with little text
  (a title box, a signature, a logo);
- table: drawn cells (rectangles and rules, at most one other shape) holding many lines of text, or
  lines of several numbers each (a table set as a picture, read by OCR);
- photo: mostly picture, many colours (or many grey levels) and little white;
- chart: three or more number labels (ticks, values), from the text layer or OCR, that are a fair
  share of its text or stand beside bars (a diagram's few numbers are not enough);
- infographic: many words in a colourful layout; diagram: the rest (flow charts, model figures,
  maps, line-art illustrations, screenshots of diagrams).
"""

from __future__ import annotations

import re
from typing import Any

from caprl_index.figures import geometry as g
from caprl_index.figures.regions import Region

_NUMBER = re.compile(r"^[\s$€£(+-]*\d[\d.,]*\s*[%)kKmMbB]?$")
_NUMBER_TOKEN = re.compile(r"(?<![\w.])[$€£(+-]?\d[\d.,]*%?(?![\w.])")
SLIVER_ASPECT = 6.0  # a region this much longer than wide (or wide than long) is a strip or a banner
SMALL_INK = 4  # graphic elements at most this many, with ...
SMALL_TEXT = 5  # ... at most this many text lines: a framed title, a rule with a label
TEXT_BOX_WORDS = 150  # ... or more words than this: a box of prose
TABLE_LINES = 8
TABLE_ROWS = 0.4  # share of lines holding several numbers in a table (a chart's lines hold one each)
CHART_NUMBERS = 0.3  # share of a chart's text lines that are numbers (ticks, values); diagrams have fewer
INFOGRAPHIC_WORDS = 60
INFOGRAPHIC_SPREAD = 0.3  # colour spread of a designed infographic; diagrams of boxes stay below
PHOTO_SHARE = 0.4  # pictures cover at least this much of a photo's region
# Share of neighbouring pixels that differ a little: photos >= 0.31 on the labelled set, flat-colour
# artwork on a dark ground (which spreads over many colours through anti-aliasing) 0.27.
PHOTO_TEXTURE = 0.3


def classify_region(region: Region, pixels: Any | None, texts: list[str] | None = None) -> str:
    """chart | infographic | diagram | photo | table | other for a detected region.

    `texts` are the region's text lines (text layer, or OCR of a picture); default: the lines the
    region absorbed.
    """
    if region.inline:
        return "other"  # a sentence with icons in it
    texts = [ln.text for ln in region.lines] if texts is None else texts
    numbers = sum(1 for t in texts if _NUMBER.match(t))
    rows = sum(1 for t in texts if len(_NUMBER_TOKEN.findall(t)) >= 2)
    words = sum(len(t.split()) for t in texts)
    # The thumbnail is made only where pixels decide (pictures; wordy layouts): ~5 ms a region.
    looked = pixels is not None and (bool(region.images) or words > INFOGRAPHIC_WORDS)
    stats = pixel_stats(pixels) if looked else None
    framed_numbers = not region.images and region.n_graphic <= 1 and numbers >= CHART_NUMBERS * len(texts)
    if len(texts) >= TABLE_LINES and (rows >= TABLE_ROWS * len(texts) or framed_numbers):
        return "table"  # lines of several numbers; or columns of numbers in a frame, with no chart ink
    if _drawn_table(region, texts):
        return "table"  # before slivers: a wide financial table is a banner's shape
    if _sliver(region.bbox):
        return "other"  # a margin strip, a banner
    little_ink = not region.images and region.n_graphic <= SMALL_INK and numbers < 3
    if little_ink and (len(texts) <= SMALL_TEXT or words > TEXT_BOX_WORDS):
        return "other"  # a frame around a title, a coloured box with a heading, a box of prose
    if _photo(region, stats, words) and texture(pixels) >= PHOTO_TEXTURE:
        return "photo"
    if numbers >= 3 and (numbers >= CHART_NUMBERS * len(texts) or len(region.rects) >= 3):
        return "chart"  # number labels, among few words or beside bars
    if words > INFOGRAPHIC_WORDS and stats and stats[0] >= INFOGRAPHIC_SPREAD:
        return "infographic"
    if region.images and not region.n_shapes - len(region.images) and _small(region.bbox):
        return "other"  # a lone small picture: a logo, a signature, a badge
    return "diagram"


def _sliver(bbox: tuple[float, float, float, float]) -> bool:
    w, h = g.width(bbox), g.height(bbox)
    return max(w, h) >= SLIVER_ASPECT * max(min(w, h), 1.0)


def _small(bbox: tuple[float, float, float, float]) -> bool:
    return g.area(bbox) < 12_000  # points², about 1.7 x 1.7 in


def _drawn_table(region: Region, texts: list[str]) -> bool:
    """Cells: rectangles (and rules) with at most one other shape, and many more paths than graphic
    elements (the cell borders), around many lines of text. A bar chart's bars are graphic."""
    shapes = region.n_shapes - len(region.images)
    pictures = sum(g.area(i.bbox) for i in region.images) / max(g.area(region.bbox), 1.0)
    return (
        not _bars(region.rects)
        and pictures < 0.2  # icons in cells, not a picture
        and shapes <= max(1, 0.05 * region.n_paths)
        and len(texts) >= TABLE_LINES
        and region.n_paths >= 2.5 * max(region.n_graphic, 1)
    )


def _bars(rects: list[tuple[float, float, float, float]]) -> bool:
    """Three or more rectangles on one baseline with three or more lengths: a bar chart's bars
    (table shading shares its edges and its sizes)."""
    columns: dict[int, set[int]] = {}  # bottom edge -> heights
    bars: dict[int, set[int]] = {}  # left edge -> widths
    for x0, y0, x1, y1 in rects:
        columns.setdefault(round(y1), set()).add(round(y1 - y0))
        bars.setdefault(round(x0), set()).add(round(x1 - x0))
    return any(len(sizes) >= 3 for sizes in (*columns.values(), *bars.values()))


def _photo(region: Region, stats: tuple[float, float] | None, words: int) -> bool:
    """Mostly picture, and many colours with little white; a darker picture (little white at all)
    may spread less when it has few words (a greyscale photo with its caption)."""
    if not region.images or stats is None:
        return False
    share = sum(g.area(i.bbox) for i in region.images) / max(g.area(region.bbox), 1.0)
    spread, white = stats
    dark = spread > 0.18 and white < 0.3 and words < 20
    return share >= PHOTO_SHARE and (dark or (spread > 0.3 and white < 0.55))


def looks_like_photo(image: Any) -> bool:
    """A photograph (many colours, little white) rather than a drawing, from a PIL image."""
    return _looks_like_photo(*pixel_stats(image))


def classify_pixels(image: Any) -> str:
    """photo | other for a whole raster page (an image file, a scan) from a PIL image."""
    spread, white = pixel_stats(image)
    return "photo" if _looks_like_photo(spread, white) else "other"


def pixel_stats(image: Any) -> tuple[float, float]:
    """(share of pixels outside the 8 commonest colours, share of near-white pixels) of a thumbnail.

    Drawings are a few flat colours; photos spread over many. Colours are counted at 4 bits per
    channel: at 3 bits a greyscale photo had only 8 levels and read as a drawing.
    """
    import numpy as np

    arr = np.asarray(image.convert("RGB").resize((96, 96)), dtype=np.uint8)
    codes = (arr[:, :, 0] >> 4).astype(np.int32) * 256 + (arr[:, :, 1] >> 4) * 16 + (arr[:, :, 2] >> 4)
    counts = np.sort(np.bincount(codes.ravel(), minlength=4096))[::-1]
    spread = 1.0 - float(counts[:8].sum()) / codes.size
    white = float(np.mean(arr.min(axis=2) > 235))
    return spread, white


def texture(image: Any) -> float:
    """Share of horizontally neighbouring pixels of a thumbnail whose grey levels differ a little
    (2..40 of 255): photos are grain and gradients, drawings flat areas and sharp edges."""
    import numpy as np

    grey = np.asarray(image.convert("L").resize((96, 96)), dtype=np.int16)
    step = np.abs(np.diff(grey, axis=1))
    return float(np.mean((step >= 2) & (step <= 40)))


def _looks_like_photo(spread: float, white: float) -> bool:
    return spread > 0.35 and white < 0.4
