"""Render a page region straight at the resolution that fits the caption pixel budget, and encode it.

Rendering the clip at the right zoom (instead of the whole page at high DPI, then cropping) keeps the
cost proportional to the crop. Drawings and charts are PNG (flat colours, sharp text); photos are
JPEG (far smaller, no visible loss).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from caprl_index.models import BBox

# Never upscale vector content past this: more pixels than ~3x add nothing to legibility.
MAX_ZOOM = 3.0
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Crop:
    """An encoded image of a region."""

    data: bytes
    mime: str
    sha256: str
    width: int
    height: int


def zoom_for(width_pt: float, height_pt: float, max_pixels: int, max_zoom: float = MAX_ZOOM) -> float:
    """The zoom (pixels per point) that makes a width x height region fit `max_pixels`."""
    area = max(width_pt * height_pt, 1.0)
    return max(min((max_pixels / area) ** 0.5, max_zoom), 0.05)


def render_region(page: Any, bbox: BBox, max_pixels: int, max_zoom: float = MAX_ZOOM) -> Any:
    """A pymupdf Pixmap (RGB, no alpha) of `bbox` on `page`, within `max_pixels`."""
    import pymupdf

    clip = pymupdf.Rect(bbox) & page.rect
    zoom = zoom_for(clip.width, clip.height, max_pixels, max_zoom)
    # Rounding can push the pixel count a little over; shrink the zoom until it fits.
    while True:
        pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), clip=clip, alpha=False)
        if pix.width * pix.height <= max_pixels or zoom < 0.06:
            return pix
        zoom *= 0.98


def encode_pixmap(pix: Any, photo: bool) -> Crop:
    """Encode a Pixmap as JPEG (photo) or PNG (everything else)."""
    if photo:
        data = pix.tobytes("jpg", jpg_quality=JPEG_QUALITY)
        mime = "image/jpeg"
    else:
        data = pix.tobytes("png")
        mime = "image/png"
    return Crop(data, mime, hashlib.sha256(data).hexdigest(), pix.width, pix.height)


def encode_pil(image: Any, max_pixels: int, photo: bool) -> Crop:
    """Downscale a PIL image into `max_pixels` and encode it as JPEG (photo) or PNG."""
    import io

    pixels = image.width * image.height
    if pixels > max_pixels:
        scale = (max_pixels / pixels) ** 0.5
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, resample=_lanczos())
    buffer = io.BytesIO()
    if photo:
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            image = image.convert("RGB")
        image.save(buffer, format="PNG", optimize=False)
        mime = "image/png"
    data = buffer.getvalue()
    return Crop(data, mime, hashlib.sha256(data).hexdigest(), image.width, image.height)


def pixmap_to_pil(pix: Any) -> Any:
    from PIL import Image

    mode = "RGB" if pix.n == 3 else "L"
    return Image.frombytes(mode, (pix.width, pix.height), pix.samples)


def _lanczos() -> Any:
    from PIL import Image

    return Image.Resampling.LANCZOS
