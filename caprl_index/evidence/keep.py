"""Keeping the evidence of a page batch: write its images, then point its chunks at them.

Called by the pipeline before the batch's points are written, so a point never refers to a missing image
(a crash in between leaves only unreferenced images, which the next garbage collection removes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from caprl_index.evidence.store import ImageStore, crop_key, page_key
from caprl_index.models import Chunk, ParsedPage


@dataclass(frozen=True)
class PageImages:
    """The URIs of one batch's kept images."""

    pages: dict[int, str] = field(default_factory=dict)  # page number -> page_image_uri
    crops: dict[str, str] = field(default_factory=dict)  # image_sha256 -> image_uri

    def attach(self, chunk: Chunk) -> Chunk:
        """`chunk` with its page render and (for figures) its crop."""
        crop = self.crops.get(chunk.figure.image_sha256) if chunk.figure else None
        return dataclasses.replace(chunk, page_image_uri=self.pages.get(chunk.page.number), image_uri=crop)


def save_images(store: ImageStore, file_sha256: str, pages: Sequence[ParsedPage]) -> PageImages:
    """Write the page renders, thumbnails and figure crops of `pages` (a crop already kept is not rewritten)."""
    out = PageImages()
    for parsed in pages:
        number = parsed.page.number
        if parsed.render is not None:
            if parsed.thumb is not None:
                store.put(page_key(file_sha256, number, thumb=True), parsed.thumb)
            out.pages[number] = store.put(page_key(file_sha256, number), parsed.render)
        for figure in parsed.figures:
            if figure.image:
                out.crops[figure.image_sha256] = store.put(crop_key(figure.image_sha256, figure.mime), figure.image)
    return out
