"""Resize and re-encode images before they are sent (a server would otherwise expand them to 16 k tokens).

PNG stays PNG (line art, text), other photos become JPEG; an image already within budget and already
PNG or JPEG is sent byte for byte. The sizes come from :mod:`caprl_index.captioning.budget`.
"""

from __future__ import annotations

import io
import math
from typing import Any

_JPEG_QUALITY = 90
_PNG_MODES = ("RGB", "RGBA", "L", "LA", "P", "1")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height, read from the header only."""
    width, height, _ = peek(data)
    return width, height


def peek(data: bytes) -> tuple[int, int, str]:
    """Width, height and MIME type (``image/png``, ``image/jpeg``, else ``""``) from the header."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        mime = {"PNG": "image/png", "JPEG": "image/jpeg"}.get(img.format or "", "")
        return img.size[0], img.size[1], mime


def fit_image(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """``data`` as PNG or JPEG with at most ``max_pixels`` pixels; returns (bytes, mime)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        fmt, (width, height) = img.format, img.size
        if width * height <= max_pixels and fmt in ("PNG", "JPEG"):
            return data, f"image/{fmt.lower()}"
        img.load()
        scale = min(1.0, math.sqrt(max_pixels / (width * height)))
        size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
        resized = img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
        return _encode(resized, png=fmt == "PNG" or _has_alpha(img))


def resize(data: bytes, size: tuple[int, int]) -> tuple[bytes, str]:
    """``data`` at exactly ``size`` (width, height) as PNG or JPEG; returns (bytes, mime)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.size == size and img.format in ("PNG", "JPEG"):
            return data, f"image/{img.format.lower()}"
        img.load()
        resized = img if img.size == size else img.resize(size, Image.Resampling.LANCZOS)
        return _encode(resized, png=img.format == "PNG" or _has_alpha(img))


def halve_pixels(data: bytes) -> tuple[bytes, str]:
    """The same image with half as many pixels (the answer to a context-length 400)."""
    width, height = image_size(data)
    return fit_image(data, max(1, width * height // 2))


def _has_alpha(img: Any) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def _encode(img: Any, *, png: bool) -> tuple[bytes, str]:
    out = io.BytesIO()
    if png:
        img = img if img.mode in _PNG_MODES else img.convert("RGBA" if _has_alpha(img) else "RGB")
        img.save(out, "PNG", optimize=False)
        return out.getvalue(), "image/png"
    img = img if img.mode in ("RGB", "L") else img.convert("RGB")
    img.save(out, "JPEG", quality=_JPEG_QUALITY)
    return out.getvalue(), "image/jpeg"
