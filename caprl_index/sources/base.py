"""Shared records of the split stage.

``prepare`` (runs once per file in a worker) opens and validates a file and returns a
`PreparedDocument`; ``parse_pages`` (runs per page range, possibly on other workers) turns it into
`ParsedPage` records. Everything here is picklable: it crosses process boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from caprl_index.models import BBox, ParsedPage, SourceFile

DocFormat = Literal["pdf", "image", "slides"]
PageMode = Literal["document", "slide", "image"]


@dataclass(frozen=True)
class NativeChart:
    """A native chart of a slide: its frame in slide points (None when the deck gives none), its
    title, and its exact data as searchable text (`pptx_charts.chart_text`)."""

    bbox: BBox | None
    title: str
    text: str


@dataclass(frozen=True)
class PreparedDocument:
    """A validated file, ready to be parsed page by page.

    - ``render_path``: a file PyMuPDF opens (the PDF itself, the image, or a deck converted to PDF
      inside the pipeline's per-file workdir); None when there is nothing to render.
    - ``page_mode``: "document" (detect figures on each page), "slide" (each page is one slide,
      captioned whole), "image" (each page is one image frame, captioned whole).
    - ``page_extra_text``: per-page text the page carries besides its text layer (speaker notes of a
      deck; native chart values too when figures are off), indexed by 0-based page; may be shorter
      than ``page_count``.
    - ``page_charts``: per-page native charts of a deck, each indexed as a figure of its own.
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
    page_charts: tuple[tuple[NativeChart, ...], ...] = ()
    pages: tuple[ParsedPage, ...] | None = None
    password: str | None = None  # the password that opened an encrypted PDF (the empty one)
    # Images not to index again: shown on many pages (logos), or first shown on another page.
    furniture_xrefs: tuple[int, ...] = ()
    image_first_page: tuple[tuple[int, int], ...] = ()  # (xref, 0-based page first showing it)

    def extra_text(self, index: int) -> str:
        """Extra text of the page at 0-based `index` ("" when none)."""
        return self.page_extra_text[index] if 0 <= index < len(self.page_extra_text) else ""

    def charts(self, index: int) -> tuple[NativeChart, ...]:
        """Native charts of the page at 0-based `index`."""
        return self.page_charts[index] if 0 <= index < len(self.page_charts) else ()
