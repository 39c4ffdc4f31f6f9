"""Cheap figure-type heuristics: from what a region is made of and a thumbnail of its pixels.

No model: the captioner sees the image anyway; the type only helps filtering and search facets.
"""

from __future__ import annotations

import re
from typing import Any

from caprl_index.figures.regions import Region

_NUMBER = re.compile(r"^[\s$€£(+-]*\d[\d.,]*\s*[%)kKmMbB]?$")
_NUMBER_TOKEN = re.compile(r"(?<![\w.])[$€£(+-]?\d[\d.,]*%?(?![\w.])")


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
    if region.is_vector and not region.images:
        if numbers >= 3:
            return "chart"
        return "infographic" if words > 60 else "diagram"
    stats = pixel_stats(pixels) if pixels is not None else None
    if stats and _looks_like_photo(*stats) and words < 10:
        return "photo"
    if len(texts) >= 8 and rows >= 0.3 * len(texts):
        return "table"  # lines of several numbers each: a table set as a picture
    if numbers >= 3:
        return "chart"
    if region.is_vector or words > 30:
        return "infographic"
    return "photo" if stats and stats[0] > 0.5 else "other"


def looks_like_photo(image: Any) -> bool:
    """A photograph (many colours, little white) rather than a drawing, from a PIL image."""
    return _looks_like_photo(*pixel_stats(image))


def classify_pixels(image: Any) -> str:
    """photo | other for a whole raster page (an image file, a scan) from a PIL image."""
    spread, white = pixel_stats(image)
    return "photo" if _looks_like_photo(spread, white) else "other"


def pixel_stats(image: Any) -> tuple[float, float]:
    """(share of pixels outside the 8 commonest colours, share of near-white pixels) of a thumbnail.

    Drawings are a few flat colours; photos spread over many.
    """
    import numpy as np

    arr = np.asarray(image.convert("RGB").resize((96, 96)), dtype=np.uint8)
    codes = (arr[:, :, 0] >> 5).astype(np.int32) * 64 + (arr[:, :, 1] >> 5) * 8 + (arr[:, :, 2] >> 5)
    counts = np.sort(np.bincount(codes.ravel(), minlength=512))[::-1]
    spread = 1.0 - float(counts[:8].sum()) / codes.size
    white = float(np.mean(arr.min(axis=2) > 235))
    return spread, white


def _looks_like_photo(spread: float, white: float) -> bool:
    return spread > 0.35 and white < 0.35
