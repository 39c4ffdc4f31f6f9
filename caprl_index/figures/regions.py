"""Find figure regions on a page: clusters of vector paths and images, grown by their labels.

Paths and images are clustered into drawings (ink.py). A cluster is a figure candidate when it
holds a real picture or enough *graphic* elements: not hairlines (rules, table borders), not boxes
around text (text frames), not the regular shading of a table. Candidates close to each other
(panels of one figure, small multiples) are then merged, and what remains must be big enough and
not mostly text."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from caprl_index.figures import geometry as g
from caprl_index.figures.captions import figure_extents
from caprl_index.figures.content import ImageBox, Line, PageContent, Path
from caprl_index.figures.icons import icon_rows
from caprl_index.figures.ink import cluster_labels, is_layout_shading, text_holders
from caprl_index.models import BBox

GAP = 8.0  # elements closer than this belong to one drawing
PANEL_GAP = 24.0  # candidates closer than this are panels of one figure
SATELLITE_REACH = 24.0  # axes and ticks drawn apart from the plot, at most this far from it
ROW_GAP = 100.0  # rows of small multiples: at most this far apart, with only labels between
THIN = 2.0  # paths thinner than this are rules or borders
MIN_SIDE = 36.0  # smallest figure side in points (half an inch)
MIN_AREA_SHARE = 0.012  # smallest figure as a share of the page
MIN_IMAGE_SIDE = 28.0  # a picture this big can be a figure on its own
MIN_ELEMENT_SIDE = 8.0  # smaller images are bullets and specks, ignored
MIN_IMAGE_PIXELS = 48 * 48
MAX_TEXT_COVER = 0.45  # regions more text than this are text boxes, not figures
LONG_BLOCK = 300  # characters: a block this long is body text, never a figure label
CAPTION_RE = re.compile(r"^\s*(fig(ure)?|chart|table|exhibit|graph|diagram|map|plate|source)\b\.?", re.I)


@dataclass
class Region:
    """A candidate figure: its box and what it is made of."""

    bbox: BBox
    images: list[ImageBox] = field(default_factory=list)  # pictures that may stand alone
    n_paths: int = 0
    n_graphic: int = 0  # elements that are neither hairlines nor boxes around text
    graphic_area: float = 0.0
    rects: list[BBox] = field(default_factory=list)  # graphic plain rectangles
    n_shapes: int = 0  # graphic elements that are not plain rectangles
    lines: list[Line] = field(default_factory=list)  # text lines inside (labels, legends)
    extent: BBox | None = None  # bbox grown over its title, caption and source note (captions.py)
    inline: bool = False  # text lines holding inline icons (icons.py), not a graphic

    @property
    def is_vector(self) -> bool:
        return self.n_graphic > 0


def find_regions(content: PageContent, skip_xrefs: Collection[int] = ()) -> list[Region]:
    """Figure regions on a page, top to bottom then left to right."""
    page = (0.0, 0.0, content.width, content.height)
    clusters = _clusters(content, skip_xrefs)
    regions = [r for r in clusters if _is_candidate(r)]
    satellites = [r for r in clusters if not _is_candidate(r)]
    for region in regions:
        _absorb_satellites(region, satellites, content.area)
        _absorb_labels(region, content)
    regions = _merge_near([r for r in regions if not _is_text_box(r)], PANEL_GAP)
    regions = _bridge_rows(regions, content)
    kept = [r for r in regions if _is_figure(r, content)]
    for region in kept:
        region.bbox = g.clip(region.bbox, page)
    kept.sort(key=lambda r: (round(r.bbox[1] / 10), r.bbox[0]))
    taken = {ln.block for r in kept for ln in r.lines}
    for region, extent in zip(kept, figure_extents([r.bbox for r in kept], content, taken), strict=True):
        region.extent = g.clip(extent, page)
    for row in icon_rows(content, [r.extent or r.bbox for r in kept]):
        lines = [ln for ln in content.lines if g.inside_fraction(ln.bbox, row) > 0.6]
        kept.append(Region(row, lines=lines, extent=row, inline=True))
    return sorted(kept, key=lambda r: (round(r.bbox[1] / 10), r.bbox[0]))


def _clusters(content: PageContent, skip_xrefs: Collection[int]) -> list[Region]:
    page = (0.0, 0.0, content.width, content.height)
    images = [i for i in content.images if min(g.width(i.bbox), g.height(i.bbox)) >= MIN_ELEMENT_SIDE]
    images = [ImageBox(g.clip(i.bbox, page), i.xref, i.width, i.height, i.nbytes) for i in images]
    boxes = [p.bbox for p in content.paths] + [i.bbox for i in images]
    if not boxes:
        return []
    outlines = [p.outline for p in content.paths] + [False] * len(images)
    labels = cluster_labels(boxes, outlines, content.width, content.height, GAP)
    holders = text_holders(content.paths, content.lines)
    regions: dict[int, Region] = {}
    for index, box in enumerate(boxes):
        region = regions.get(labels[index])
        if region is None:
            region = regions[labels[index]] = Region(box)
        region.bbox = g.union([region.bbox, box])
        if index < len(content.paths):
            _count_path(region, content.paths[index], index in holders)
        else:
            _count_image(region, images[index - len(content.paths)], skip_xrefs)
    for region in regions.values():
        _discount_table_shading(region, content.width)
    return list(regions.values())


def _count_path(region: Region, path: Path, holder: bool) -> None:
    region.n_paths += 1
    if holder or path.ruling or min(g.width(path.bbox), g.height(path.bbox)) < THIN:
        return
    region.n_graphic += 1
    region.graphic_area += g.area(path.bbox)
    if path.rect:
        region.rects.append(path.bbox)
    else:
        region.n_shapes += 1


def _count_image(region: Region, image: ImageBox, skip_xrefs: Collection[int]) -> None:
    w, h = g.width(image.bbox), g.height(image.bbox)
    skipped = bool(image.xref) and image.xref in skip_xrefs
    big = min(w, h) >= MIN_IMAGE_SIDE and image.width * image.height >= MIN_IMAGE_PIXELS
    if big and not skipped and max(w, h) / max(min(w, h), 1.0) <= 12:
        region.images.append(image)
        region.graphic_area += g.area(image.bbox)
    # Icons, and repeated pictures, count as graphic elements of a larger drawing only.
    region.n_graphic += 1
    region.n_shapes += 1


def _discount_table_shading(region: Region, page_width: float) -> None:
    """Rectangles that are table or layout shading are not chart ink."""
    if is_layout_shading(region.rects, region.n_shapes, region.bbox, page_width):
        region.n_graphic -= len(region.rects)
        region.graphic_area = sum(g.area(i.bbox) for i in region.images)


def _absorb_satellites(region: Region, satellites: list[Region], page_area: float) -> None:
    """Fold in the hairline-only clusters just around a drawing: its axes, ticks and frame."""
    reach = g.expand(region.bbox, SATELLITE_REACH)
    for other in satellites:
        near = g.inside_fraction(other.bbox, reach) >= 0.99
        frame = (
            g.inside_fraction(region.bbox, other.bbox) >= 0.99
            and g.area(other.bbox) <= min(4 * g.area(reach), 0.5 * page_area)  # not a page border
        )
        if other.n_paths and (near or frame):
            region.bbox = g.union([region.bbox, other.bbox])
            region.n_paths += other.n_paths


def _is_candidate(region: Region) -> bool:
    """Worth growing: has a picture, or ink that is not only rules and frames."""
    return bool(region.images) or region.n_graphic >= 1


def _merge_near(regions: list[Region], gap: float) -> list[Region]:
    """Union regions that come within `gap` of each other, until none do."""
    merged = True
    while merged:
        merged = False
        out: list[Region] = []
        for region in regions:
            grown = g.expand(region.bbox, gap / 2)
            for other in out:
                if g.overlaps(grown, g.expand(other.bbox, gap / 2)):
                    _fold(other, region)
                    merged = True
                    break
            else:
                out.append(region)
        regions = out
    return regions


def _bridge_rows(regions: list[Region], content: PageContent) -> list[Region]:
    """Join drawings stacked in rows with only short labels between them (small multiples)."""
    regions = sorted(regions, key=lambda r: r.bbox[1])
    out: list[Region] = []
    for region in regions:
        above = next((r for r in reversed(out) if _bridgeable(r.bbox, region.bbox, content)), None)
        if above is None:
            out.append(region)
        else:
            _fold(above, region)
    return out


def _bridgeable(top: BBox, bottom: BBox, content: PageContent) -> bool:
    gap = bottom[1] - top[3]
    overlap = min(top[2], bottom[2]) - max(top[0], bottom[0])
    if not 0 < gap <= ROW_GAP or overlap < 0.6 * min(g.width(top), g.width(bottom)):
        return False
    band = (min(top[0], bottom[0]), top[3], max(top[2], bottom[2]), bottom[1])
    between = [ln for ln in content.lines if g.overlaps(ln.bbox, band)]
    if not between:
        return False  # white space alone separates two figures
    lengths: dict[int, int] = {}
    for line in content.lines:
        lengths[line.block] = lengths.get(line.block, 0) + len(line.text)
    return all(lengths[ln.block] <= 80 and not CAPTION_RE.match(ln.text) for ln in between)


def _fold(into: Region, other: Region) -> None:
    into.bbox = g.union([into.bbox, other.bbox])
    into.images += other.images
    into.n_paths += other.n_paths
    into.n_graphic += other.n_graphic
    into.n_shapes += other.n_shapes
    into.graphic_area += other.graphic_area
    into.rects += other.rects
    have = {id(ln) for ln in into.lines}
    into.lines += [ln for ln in other.lines if id(ln) not in have]


def _absorb_labels(region: Region, content: PageContent) -> None:
    """Grow a drawing over the short text lines that touch it: axis ticks, legends, labels, titles."""
    block_len: dict[int, int] = {}
    for line in content.lines:
        block_len[line.block] = block_len.get(line.block, 0) + len(line.text)
    have = {id(ln) for ln in region.lines}
    for _ in range(2):
        reach = g.expand(region.bbox, 10.0, 6.0)
        for line in content.lines:
            if id(line) in have or not g.overlaps(reach, line.bbox):
                continue
            inside = g.inside_fraction(line.bbox, region.bbox) > 0.6
            if not inside and region.images and region.n_graphic <= len(region.images):
                continue  # a picture's labels are in its pixels; text beside it is its caption
            if not inside and (block_len[line.block] > LONG_BLOCK or CAPTION_RE.match(line.text)):
                continue
            if not inside and g.width(line.bbox) > max(1.2 * g.width(region.bbox), 160.0):
                continue
            region.lines.append(line)
            have.add(id(line))
            region.bbox = g.union([region.bbox, line.bbox])


def _text_cover(region: Region) -> float:
    text_area = sum(g.intersection(line.bbox, region.bbox) for line in region.lines)
    return text_area / max(g.area(region.bbox), 1.0)


def _is_text_box(region: Region) -> bool:
    return not region.images and _text_cover(region) > MAX_TEXT_COVER


def _is_figure(region: Region, content: PageContent) -> bool:
    b = region.bbox
    if g.width(b) < MIN_SIDE or g.height(b) < MIN_SIDE or g.area(b) < MIN_AREA_SHARE * content.area:
        return False
    if region.images:
        return True
    if region.n_graphic < 3 and region.graphic_area < 0.15 * g.area(b):
        return False  # rules, table grids, frames around text
    return _text_cover(region) <= MAX_TEXT_COVER
