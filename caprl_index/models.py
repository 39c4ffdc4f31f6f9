"""Frozen records that flow between pipeline stages.

discover → split → detect figures → caption → chunk → embed → store
SourceFile  ParsedPage(Page + Figure*)  Caption   Chunk   vectors  points

Everything here is picklable: pages are parsed on worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BBox = tuple[float, float, float, float]
Kind = Literal["text", "figure", "page"]
FigureType = Literal["chart", "infographic", "diagram", "photo", "table", "slide", "other"]
CaptionSource = Literal["vllm", "ocr", "none"]

FIGURE_TYPES: tuple[str, ...] = ("chart", "infographic", "diagram", "photo", "table", "slide", "other")


@dataclass(frozen=True)
class SourceFile:
    """A discovered input file."""

    path: str  # absolute
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class TextBlock:
    """A block of page text in reading order, with its box in PDF points (origin top-left)."""

    text: str
    bbox: BBox


@dataclass(frozen=True)
class Page:
    """One page (or slide, or image frame) of a document."""

    number: int  # 1-based
    width: float  # points
    height: float
    text: str  # page text in reading order (OCR text for scans)
    blocks: tuple[TextBlock, ...] = ()
    scanned: bool = False  # no text layer: text came from OCR
    extra_text: str = ""  # exact data the page carries besides its text (native chart values)


@dataclass(frozen=True)
class Figure:
    """A region to caption: a detected figure, or a whole page (slides, scans)."""

    kind: Kind  # "figure" or "page"
    figure_type: str  # one of FIGURE_TYPES
    bbox: BBox | None  # PDF points; whole page for kind="page"
    image: bytes  # encoded crop, already within the pixel budget
    mime: str  # "image/png" or "image/jpeg"
    image_sha256: str  # sha256 of `image`
    region_index: int  # position among the page's regions (stable id component)
    printed_caption: str = ""  # "Figure 3: ..." or a chart title printed on the page
    context_text: str = ""  # nearby text on the page
    ocr_text: str = ""  # text inside the region (text layer, else OCR)


@dataclass(frozen=True)
class ParsedPage:
    """A page with the regions found on it."""

    page: Page
    figures: tuple[Figure, ...] = ()
    render: bytes | None = None  # WebP of the whole page for viewing (evidence), when images are kept
    thumb: bytes | None = None  # its thumbnail


@dataclass(frozen=True)
class ParsedDocument:
    """Result of splitting one file."""

    file: SourceFile
    page_count: int
    pages: tuple[ParsedPage, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Caption:
    """The text that describes one figure, with where it came from."""

    text: str
    source: CaptionSource
    model: str | None = None
    prompt_version: str | None = None
    truncated: bool = False  # finish_reason == "length"
    error: str | None = None  # why vLLM captioning failed, when source != "vllm"
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """One unit to embed and store (a Qdrant point)."""

    text: str
    file: SourceFile
    page_count: int
    page: Page
    kind: Kind
    chunk_index: int
    figure: Figure | None = None
    caption: Caption | None = None
    region_index: int = -1  # -1 for page text
    image_uri: str | None = None  # the kept figure crop (figure and page kinds)
    page_image_uri: str | None = None  # the kept page render

    @property
    def figure_type(self) -> str | None:
        return self.figure.figure_type if self.figure else None


@dataclass
class FileFailure:
    """A file (or item of a file) that could not be processed, for the run summary."""

    path: str
    reason: str


@dataclass
class RunStats:
    """Counters for the ingest summary."""

    files_seen: int = 0
    files_indexed: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_pruned: int = 0
    pages: int = 0
    figures: int = 0
    points: int = 0
    captions_by_source: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    caption_failures: int = 0
    truncated_captions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    caption_errors: dict[str, int] = field(default_factory=dict)  # failed captions by kind of failure
    caption_error_samples: dict[str, str] = field(default_factory=dict)  # one full reason per kind
    failures: list[FileFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    captioner: str = ""  # what captioned this run: vllm, ocr (also auto's fallback), none
