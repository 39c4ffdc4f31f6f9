"""Pictures of a .pptx as figures: decoded, cropped as shown, re-encoded within the pixel budget.

Used by the path without LibreOffice, where a picture's own bytes are the only image there is.
Decorations are dropped: pictures too small to matter, and small ones repeated across slides
(logos). A PNG or JPEG already within the budget is sent as it is, byte for byte. Pictures that are
not photos (screenshots, charts and tables pasted as images) are OCR'd: without a captioner their
pixels' words are the only text they have. Alt text that PowerPoint fills in by itself ("image.png",
"Picture 3") is not a caption.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter
from typing import Any

from caprl_index.models import BBox, Figure, Page

# Decorations: pictures this small (fraction of the slide) or repeated on this many slides and
# small (a logo in the corner) say nothing a caption would add.
MIN_AREA_FRACTION = 0.004
MIN_PIXELS_SIDE = 32
REPEAT_SLIDES = 3
REPEAT_MAX_AREA_FRACTION = 0.05
CONTEXT_CHARS = 600  # slide text given to the captioner as the figure's context
# Alt text PowerPoint writes by itself: the picture's file name or "Picture 3"; not a caption.
_DEFAULT_ALT = re.compile(
    r"^(.*\.(png|jpe?g|gif|bmp|tiff?|emf|wmf|svg|webp)|(picture|image|graphic|grafik|bild|imagen|content placeholder)"
    r"\s*\d*)$",
    re.I,
)


def picture_sha1(shape: Any) -> str | None:
    try:
        return str(shape.image.sha1) if _is_picture(shape) else None
    except Exception:  # linked (not embedded) or missing image part
        return None


def _is_picture(shape: Any) -> bool:
    from pptx.shapes.picture import Picture

    return isinstance(shape, Picture)


def picture_figures(
    items: list[tuple[Any, BBox | None]], page: Page, repeats: Counter[str], max_pixels: int, *, ocr: bool = True
) -> tuple[Figure, ...]:
    slide_area = page.width * page.height or 1.0
    figures: list[Figure] = []
    for shape, box in items:
        sha1 = picture_sha1(shape)
        if sha1 is None or box is None:
            continue
        fraction = max(box[2] - box[0], 0) * max(box[3] - box[1], 0) / slide_area
        logo = repeats[sha1] >= REPEAT_SLIDES and fraction < REPEAT_MAX_AREA_FRACTION
        if fraction < MIN_AREA_FRACTION or logo:
            continue
        figure = _picture_figure(shape, box, page, len(figures), max_pixels, ocr)
        if figure is not None:
            figures.append(figure)
    return tuple(figures)


def _picture_figure(shape: Any, box: BBox, page: Page, index: int, max_pixels: int, ocr: bool) -> Figure | None:
    decoded = _decode(shape, max_pixels)
    if decoded is None or min(decoded[0].size) < MIN_PIXELS_SIDE:
        return None
    image, original_mime = decoded
    photo = _looks_like_photo(image)
    if original_mime:  # already a PNG/JPEG within the budget: re-encoding would only cost time
        data, mime = shape.image.blob, original_mime
    else:
        from caprl_index.figures.crop import encode_pil

        crop = encode_pil(image, max_pixels, photo)
        data, mime = crop.data, crop.mime
    return Figure(
        kind="figure",
        figure_type="photo" if photo else "other",
        bbox=box,
        image=data,
        mime=mime,
        image_sha256=hashlib.sha256(data).hexdigest(),
        region_index=index,
        printed_caption=_alt_text(shape),
        context_text=page.text[:CONTEXT_CHARS],
        ocr_text=_ocr(image) if ocr and not photo else "",
    )


def _ocr(image: Any) -> str:
    from caprl_index.sources.ocr import ocr_text

    return ocr_text(image)


def _decode(shape: Any, max_pixels: int) -> tuple[Any, str | None] | None:
    """The picture as a PIL image, cropped as it shows on the slide, and the MIME type of its file
    when that can be sent unchanged; None when PIL cannot read it (EMF/WMF, damaged bytes, bombs)."""
    from PIL import Image

    crop = _crop_fractions(shape)
    try:
        image = Image.open(io.BytesIO(shape.image.blob))
        fits = image.width * image.height <= max_pixels
        # A JPEG decodes straight at a fraction of its size: no need for 24 MP to send 1 MP.
        visible = max((1 - crop[0] - crop[2]) * (1 - crop[1] - crop[3]), 0.01)
        scale = min((max_pixels / visible / max(image.width * image.height, 1)) ** 0.5, 1.0)
        image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
        image.load()
    except Exception:  # PIL raises a zoo of types (incl. DecompressionBombError) on bad bytes
        return None
    original = str(image.format)
    as_is = original in ("PNG", "JPEG") and fits and not any(crop)
    if image.mode in ("P", "PA", "LA", "RGBA", "I;16", "I", "F", "CMYK", "1"):
        # Opaque palette images can go as they are; transparency needs a white background.
        as_is = as_is and image.mode == "P" and "transparency" not in image.info
        image = _flatten(image)
    return _apply_crop(image, crop), f"image/{original.lower()}" if as_is else None


def _flatten(image: Any) -> Any:
    """RGB on white: a transparent logo on black is unreadable to a captioner."""
    from PIL import Image

    if image.mode in ("I;16", "I", "F"):
        return image.convert("L").convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _crop_fractions(shape: Any) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) fractions cut off the picture; zeros when none or invalid."""
    try:
        left, top = max(shape.crop_left, 0.0), max(shape.crop_top, 0.0)
        right, bottom = max(shape.crop_right, 0.0), max(shape.crop_bottom, 0.0)
    except Exception:  # no srcRect, or a malformed one
        return (0.0, 0.0, 0.0, 0.0)
    if left + right >= 1 or top + bottom >= 1:
        return (0.0, 0.0, 0.0, 0.0)
    return (left, top, right, bottom)


def _apply_crop(image: Any, crop: tuple[float, float, float, float]) -> Any:
    left, top, right, bottom = crop
    if not any(crop):
        return image
    w, h = image.size
    box = (int(w * left), int(h * top), int(w * (1 - right)), int(h * (1 - bottom)))
    return image.crop(box) if box[2] > box[0] and box[3] > box[1] else image


def _looks_like_photo(image: Any) -> bool:
    """Photos have thousands of distinct colours even in a thumbnail; charts and diagrams do not."""
    from PIL import Image

    thumb = image.resize((64, 64), Image.Resampling.NEAREST).convert("RGB")
    colours = thumb.getcolors(maxcolors=4096)
    return colours is None or len(colours) > 1500


def _alt_text(shape: Any) -> str:
    c_nv_pr = shape._element.find(".//{http://schemas.openxmlformats.org/presentationml/2006/main}cNvPr")
    text = (c_nv_pr.get("descr") or c_nv_pr.get("title") or "") if c_nv_pr is not None else ""
    text = " ".join(text.split())
    return "" if _DEFAULT_ALT.match(text) else text
