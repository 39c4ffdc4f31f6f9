"""Shared records of the split stage.

``prepare`` (runs once per file in a worker) opens and validates a file and returns a
`PreparedDocument`; ``parse_pages`` (runs per page range, possibly on other workers) turns it into
`ParsedPage` records. Everything here is picklable: it crosses process boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from caprl_index.models import ParsedPage, SourceFile

DocFormat = Literal["pdf", "image", "slides"]
PageMode = Literal["document", "slide", "image"]


@dataclass(frozen=True)
class PreparedDocument:
    """A validated file, ready to be parsed page by page.

    - ``render_path``: a file PyMuPDF opens (the PDF itself, the image, or a deck converted to PDF
      inside the pipeline's per-file workdir); None when there is nothing to render.
    - ``page_mode``: "document" (detect figures on each page), "slide" (each page is one slide,
      captioned whole), "image" (each page is one image frame, captioned whole).
    - ``page_extra_text``: per-page exact data the page carries besides its text (native chart
      values of a deck), indexed by 0-based page; may be shorter than ``page_count``.
    - ``pages``: precomputed pages for documents with nothing to render (python-pptx fallback);
      ``parse_pages`` then slices them.
    """

    file: SourceFile
    page_count: int
    format: DocFormat = "pdf"
    page_mode: PageMode = "document"
    render_path: str | None = None
    warnings: tuple[str, ...] = ()
    page_extra_text: tuple[str, ...] = ()
    pages: tuple[ParsedPage, ...] | None = None
    password: str | None = None  # the password that opened an encrypted PDF (the empty one)
    # Images not to index again: shown on many pages (logos), or first shown on another page.
    furniture_xrefs: tuple[int, ...] = ()
    image_first_page: tuple[tuple[int, int], ...] = ()  # (xref, 0-based page first showing it)

    def extra_text(self, index: int) -> str:
        """Extra text of the page at 0-based `index` ("" when none)."""
        return self.page_extra_text[index] if 0 <= index < len(self.page_extra_text) else ""
