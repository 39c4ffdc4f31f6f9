"""Image files (PNG, JPEG, TIFF, WebP): one page per image, one page per frame of a multi-frame TIFF.

Each page is one Figure(kind="page") of the whole image, with OCR text as the page text. Pixel
counts are checked before decoding so a decompression bomb is refused instead of eating memory.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile
from caprl_index.figures.classify import classify_pixels
from caprl_index.figures.crop import encode_pil
from caprl_index.models import BBox, Figure, Page, ParsedPage, SourceFile, TextBlock
from caprl_index.sources.base import PreparedDocument

MAX_IMAGE_PIXELS = 120_000_000  # beyond this an image is refused as a likely decompression bomb
MAX_FRAMES = 2_000


def _open(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise CorruptFile(path, f"image refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CorruptFile(path, f"not a readable image ({exc}); re-export or re-download it") from None
    pixels = image.width * image.height
    if pixels > MAX_IMAGE_PIXELS or pixels == 0:
        image.close()
        raise CorruptFile(
            path,
            f"image of {image.width}x{image.height} px refused: over {MAX_IMAGE_PIXELS:,} px is treated "
            "as a decompression bomb; downscale it first",
        )
    return image


def prepare_image(file: SourceFile, settings: Settings, workdir: Path) -> PreparedDocument:
    """Validate an image file and count its frames (pages)."""
    image = _open(file.path)
    try:
        frames = int(getattr(image, "n_frames", 1)) if image.format == "TIFF" else 1
        image.seek(frames - 1)  # a truncated multi-frame file fails here, not mid-ingest
        image.load()
    except (OSError, EOFError, ValueError, SyntaxError) as exc:
        raise CorruptFile(file.path, f"the image is damaged or truncated ({exc}); re-export it") from None
    finally:
        image.close()
    warn: tuple[str, ...] = ()
    if frames > MAX_FRAMES:
        warn = (f"{file.path}: {frames} frames, only the first {MAX_FRAMES} are indexed",)
        frames = MAX_FRAMES
    return PreparedDocument(
        file=file, page_count=frames, format="image", page_mode="image", render_path=file.path, warnings=warn
    )


def parse_image_pages(doc: PreparedDocument, start: int, stop: int, settings: Settings) -> list[ParsedPage]:
    """Parse frames start..stop-1 of a prepared image file."""
    path = doc.render_path or doc.file.path
    image = _open(path)
    try:
        pages = []
        for index in range(start, min(stop, doc.page_count)):
            image.seek(index)
            pages.append(_frame_page(image.copy(), index, settings))
        return pages
    except (OSError, EOFError, ValueError) as exc:
        raise CorruptFile(path, f"the image is damaged or truncated ({exc}); re-export it") from None
    finally:
        image.close()


def _frame_page(frame: Any, index: int, settings: Settings) -> ParsedPage:
    from PIL import ImageOps

    from caprl_index.sources.ocr import lines_to_text, ocr_image

    frame = _flatten(ImageOps.exif_transpose(frame))  # phone photos are stored sideways + a rotation tag
    lines = ocr_image(frame) if settings.ocr else []
    text = lines_to_text(lines)
    width, height = float(frame.width), float(frame.height)  # 1 pixel = 1 point
    blocks = tuple(TextBlock(ln.text, _rounded(ln.bbox)) for ln in lines)
    page = Page(index + 1, width, height, text, blocks, scanned=True)
    if not settings.figures:
        return ParsedPage(page)
    figure_type = classify_pixels(frame)
    crop = encode_pil(frame, settings.max_pixels, photo=figure_type == "photo")
    figure = Figure(
        kind="page",
        figure_type=figure_type,
        bbox=(0.0, 0.0, width, height),
        image=crop.data,
        mime=crop.mime,
        image_sha256=crop.sha256,
        region_index=0,
        ocr_text=text,
    )
    return ParsedPage(page, (figure,))


def _rounded(b: BBox) -> BBox:
    return (round(b[0], 2), round(b[1], 2), round(b[2], 2), round(b[3], 2))


def _flatten(image: Any) -> Any:
    """RGB (or L) without alpha: transparent areas become white, as a viewer shows them."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.split()[3])
        return background
    if image.mode not in ("RGB", "L"):
        return image.convert("RGB")
    return image
