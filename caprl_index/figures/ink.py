"""Low-level reading of page ink: which elements form one drawing, which boxes only frame text,
which rectangles are table or layout shading.

Clustering uses a coarse occupancy grid (2 pt cells) and connected components: linear in the
number of elements, so maps and scatter plots with thousands of paths stay cheap.
"""

from __future__ import annotations

from caprl_index.figures import geometry as g
from caprl_index.figures.content import Line, Path
from caprl_index.models import BBox

CELL = 2.0  # occupancy grid resolution in points


def cluster_labels(boxes: list[BBox], outlines: list[bool], width: float, height: float, gap: float) -> list[int]:
    """Connected-component label of each box on an occupancy grid (boxes within `gap` connect)."""
    import cv2  # OpenCV comes with rapidocr; scipy.ndimage's import was 0.2-0.6 s of each parser's start
    import numpy as np

    cols, rows = int(width / CELL) + 2, int(height / CELL) + 2
    grid = np.zeros((rows, cols), dtype=np.uint8)
    cells = []
    pad = gap / 2
    for box, outline in zip(boxes, outlines, strict=True):
        x0, y0 = _cell(box[0] - pad, cols), _cell(box[1] - pad, rows)
        x1, y1 = _cell(box[2] + pad, cols) + 1, _cell(box[3] + pad, rows) + 1
        if outline and (x1 - x0) > 8 and (y1 - y0) > 8:
            # A frame is ink only along its edges: it must not glue together all it encloses.
            e = max(1, int(gap / CELL))
            grid[y0 : y0 + e, x0:x1] = grid[y1 - e : y1, x0:x1] = 1
            grid[y0:y1, x0 : x0 + e] = grid[y0:y1, x1 - e : x1] = 1
        else:
            grid[y0:y1, x0:x1] = 1
        cells.append((y0, x0))
    _, labelled = cv2.connectedComponents(grid, connectivity=8, ltype=cv2.CV_32S)  # diagonal cells connect
    return [int(labelled[y, x]) for y, x in cells]


def _cell(value: float, limit: int) -> int:
    return min(max(int(value / CELL), 0), limit - 1)


def text_holders(paths: list[Path], lines: list[Line]) -> set[int]:
    """Indices of plain boxes around text (text frames, shaded rows, buttons)."""
    import numpy as np

    boxes = [(i, p.bbox) for i, p in enumerate(paths) if p.rect and g.width(p.bbox) >= 8 and g.height(p.bbox) >= 6]
    if not boxes or not lines:
        return set()
    text = np.array([ln.bbox for ln in lines], dtype=float)
    text_area = np.maximum(text[:, 2] - text[:, 0], 1e-6) * np.maximum(text[:, 3] - text[:, 1], 1e-6)
    holders = set()
    for index, b in boxes:
        w = np.clip(np.minimum(text[:, 2], b[2]) - np.maximum(text[:, 0], b[0]), 0, None)
        h = np.clip(np.minimum(text[:, 3], b[3]) - np.maximum(text[:, 1], b[1]), 0, None)
        overlap = w * h
        inside = overlap / text_area > 0.5
        if inside.sum() >= 2 or overlap[inside].sum() >= 0.35 * g.area(b):
            holders.add(index)
    return holders


def is_layout_shading(rects: list[BBox], n_shapes: int, bbox: BBox, page_width: float) -> bool:
    """Plain rectangles that only shade table rows (a full-width band), tile a grid of few sizes,
    or stack into a panel behind text: layout, not chart ink."""
    if not rects or n_shapes >= 2:
        return False
    sizes = [(round(g.width(b)), round(g.height(b))) for b in rects]
    widths, heights = {w for w, _ in sizes}, {h for _, h in sizes}
    # Row shading spans the table: in each row the rectangles (one band, or the band cut into cells)
    # cover (nearly) the whole width. Bars of a bar chart are narrow, even when the tallest is as tall
    # as the chart, and each stands in a row of its own.
    covered: dict[int, float] = {}
    for b in rects:
        covered[round(b[1])] = covered.get(round(b[1]), 0.0) + g.width(b)
    full_rows = all(w >= 0.8 * g.width(bbox) for w in covered.values())
    wide, even = g.width(bbox) >= 0.5 * page_width, len(heights) <= 2
    one_band = g.height(bbox) <= 1.5 * max(heights) + 1
    band = wide and even and (one_band or full_rows)
    limit = max(2, int(0.4 * len(rects)))
    grid = len(rects) >= 3 and len(widths) <= limit and len(heights) <= limit
    stacked = len({round(b[0]) for b in rects}) == 1 and len({round(b[2]) for b in rects}) == 1
    return band or grid or (stacked and n_shapes == 0)


GLYPH_SIDE = 24.0  # points: a letter drawn as an outline is at most this big (chart labels, titles)


def glyph_paths(paths: list[Path], bbox: BBox) -> int:
    """Filled curved shapes of letter size inside `bbox`: text drawn as outlines (no text layer).

    Charts exported with "convert text to outlines" (Pew, Illustrator, many PDF exporters) carry
    their labels only as such shapes; their markers and bars are rectangles or fewer.
    """
    count = 0
    for path in paths:
        b = path.bbox
        if path.fill and not path.rect and path.n_items >= 2 and g.width(b) <= GLYPH_SIDE and g.height(b) <= GLYPH_SIDE:
            count += g.inside_fraction(b, bbox) > 0.9
    return count
