"""Small helpers on (x0, y0, x1, y1) boxes in PDF points."""

from __future__ import annotations

from collections.abc import Iterable

from caprl_index.models import BBox


def width(b: BBox) -> float:
    return b[2] - b[0]


def height(b: BBox) -> float:
    return b[3] - b[1]


def area(b: BBox) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersection(a: BBox, b: BBox) -> float:
    """Area of the overlap of two boxes."""
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def union(boxes: Iterable[BBox]) -> BBox:
    xs0, ys0, xs1, ys1 = zip(*boxes, strict=True)
    return (min(xs0), min(ys0), max(xs1), max(ys1))


def expand(b: BBox, dx: float, dy: float | None = None) -> BBox:
    dy = dx if dy is None else dy
    return (b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy)


def clip(b: BBox, page: BBox) -> BBox:
    return (max(b[0], page[0]), max(b[1], page[1]), min(b[2], page[2]), min(b[3], page[3]))


def overlaps(a: BBox, b: BBox) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside_fraction(inner: BBox, outer: BBox) -> float:
    """Share of `inner`'s area that lies inside `outer`."""
    a = area(inner)
    return intersection(inner, outer) / a if a > 0 else 0.0


def center(b: BBox) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def contains_point(b: BBox, x: float, y: float) -> bool:
    return b[0] <= x <= b[2] and b[1] <= y <= b[3]
