"""The captioner interface, its counters, and the two captioners that need no server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from caprl_index.models import Caption, Figure


@dataclass
class CaptionStats:
    """What a captioner did, for the run summary and benchmarks."""

    requests: int = 0  # HTTP requests sent (retries included)
    cache_hits: int = 0
    dedup_hits: int = 0  # figures that shared an identical image's request in flight
    failures: int = 0  # figures that fell back to OCR text after retries
    truncated: int = 0  # captions cut by max_tokens (kept, flagged)
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds per successful request
    by_source: dict[str, int] = field(default_factory=dict)  # captions returned, by Caption.source
    by_url: dict[str, int] = field(default_factory=dict)  # requests sent, by server URL

    def count(self, caption: Caption) -> Caption:
        """Record a caption handed back to the caller; returns it."""
        self.by_source[caption.source] = self.by_source.get(caption.source, 0) + 1
        return caption


@runtime_checkable
class Captioner(Protocol):
    """Turns a figure into the text that describes it. Never raises for one figure."""

    stats: CaptionStats

    async def caption(self, figure: Figure) -> Caption: ...

    async def aclose(self) -> None: ...


class OcrCaptioner:
    """The figure's OCR text (``--captioner ocr``, and ``auto`` when vLLM is not reachable).

    With this captioner the splitter OCRs every figure without a usable text layer (`Settings.figure_ocr`),
    so the figure's text holds the words of its pixels; that is what sets it apart from `NoneCaptioner`.
    """

    def __init__(self) -> None:
        self.stats = CaptionStats()

    async def caption(self, figure: Figure) -> Caption:
        return self.stats.count(Caption(text=figure.ocr_text, source="ocr"))

    async def aclose(self) -> None:
        pass


class NoneCaptioner:
    """No caption: the figure is indexed with its printed caption, the text layer inside it and nearby
    text only (``--captioner none`` also turns figure OCR off at split time: the fastest ingest)."""

    def __init__(self) -> None:
        self.stats = CaptionStats()

    async def caption(self, figure: Figure) -> Caption:
        return self.stats.count(Caption(text="", source="none"))

    async def aclose(self) -> None:
        pass
