"""Evidence images for the API: figure crops by hash, page renders (or thumbnails), a page with a box drawn.

Keys come from `caprl_index.evidence` (`crop_key`, `page_key`), so the service reads exactly what ingest
wrote; hashes are checked to be hex first, and the image store refuses anything outside its folder.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

from caprl_index.evidence import crop_key, page_key
from caprl_index.service.security import Refused

if TYPE_CHECKING:
    from caprl_index.evidence import ImageStore

SHA256 = re.compile(r"[0-9a-f]{64}")
CROP_TYPES = ("image/png", "image/jpeg", "image/webp")  # what ingest may have written a crop as


def _store(images: ImageStore | None) -> ImageStore:
    if images is None:
        raise Refused(404, "this index keeps no images (CAPRL_KEEP_IMAGES=false): ingest with it on to see them")
    return images


def _hash(value: str, what: str) -> str:
    if not SHA256.fullmatch(value):
        raise Refused(422, f"{what} must be 64 lower-case hex digits (a sha256), not {value[:80]!r}")
    return value


def crop_file(images: ImageStore | None, image_sha256: str) -> tuple[Path, str]:
    """The crop file and its media type."""
    store, sha = _store(images), _hash(image_sha256, "image_sha256")
    for mime in CROP_TYPES:
        path = store.local_path(crop_key(sha, mime))
        if path is not None:
            return path, mime
    raise Refused(404, f"no figure image {sha} in this index (its file was re-ingested or deleted?)")


def page_file(images: ImageStore | None, file_sha256: str, page: int, *, thumb: bool = False) -> Path:
    """The render of a page of one file version (or its thumbnail)."""
    store, sha = _store(images), _hash(file_sha256, "file_sha256")
    path = store.local_path(page_key(sha, page, thumb=thumb))
    if path is None:
        raise Refused(404, f"no render of page {page} of file {sha[:12]}… (a deck read without LibreOffice has none)")
    return path


def parse_box(text: str) -> tuple[float, float, float, float]:
    """`x0,y0,x1,y1` in PDF points."""
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise Refused(422, f"box={text[:80]!r}: expected x0,y0,x1,y1 in PDF points, e.g. 50,100,400,380") from None
    if not (x1 > x0 and y1 > y0):
        raise Refused(422, f"box={text[:80]!r}: x1 must exceed x0 and y1 exceed y0")
    return x0, y0, x1, y1


def draw_box(path: Path, box: tuple[float, float, float, float], page_size: tuple[float, float]) -> bytes:
    """The page render as PNG with `box` (PDF points on a page of `page_size` points) outlined, drawn as
    `caprl-index show` draws it."""
    from PIL import Image

    from caprl_index.evidence.show import draw_boxes

    with Image.open(path) as opened:
        image = draw_boxes(opened, (box,), *page_size)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
