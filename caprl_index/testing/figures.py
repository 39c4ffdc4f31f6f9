"""Small real images and Figures for tests: each one distinct (its colour is derived from a seed)."""

from __future__ import annotations

import hashlib
import io

from caprl_index.models import Figure


def image_bytes(width: int = 64, height: int = 48, seed: int = 0, fmt: str = "PNG") -> bytes:
    """An encoded image whose pixels (and so sha256 and mean colour) depend on ``seed``."""
    from PIL import Image, ImageDraw

    h = hashlib.sha256(f"caprl-test-image-{seed}".encode()).digest()
    img = Image.new("RGB", (width, height), (h[0], h[1], h[2]))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, max(1, width * h[6] // 512), max(1, height // 3)), fill=(h[3], h[4], h[5]))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def make_figure(image: bytes, mime: str = "image/png", *, ocr_text: str = "OCR words", index: int = 0) -> Figure:
    """A detected figure carrying ``image``."""
    return Figure(
        kind="figure",
        figure_type="chart",
        bbox=(10.0, 20.0, 110.0, 120.0),
        image=image,
        mime=mime,
        image_sha256=hashlib.sha256(image).hexdigest(),
        region_index=index,
        ocr_text=ocr_text,
    )


def figures(n: int, *, width: int = 64, height: int = 48, start: int = 0) -> list[Figure]:
    """``n`` distinct PNG figures; figure i's OCR text is ``"ocr <i>"``."""
    return [
        make_figure(image_bytes(width, height, seed=i), ocr_text=f"ocr {i}", index=i) for i in range(start, start + n)
    ]
