"""Chunking: page text with LlamaIndex's SentenceSplitter; each figure becomes its own chunk(s).

Figure text = printed caption + model caption + text found inside the figure, split when longer than the
embedding model's window (CapRL captions run ~750 tokens; all-MiniLM-L6-v2 reads 256).

One point per piece of content: a whole-page figure (a scan, an image file, a slide) does not repeat
the lines the page's text point already holds. A scan's OCR text used to be stored twice, as `text`
and as `page`, and the twins took ranks 1 and 2 of a search (and a cross-kind bonus when grouping by
page); the page point now says only what the page text does not (its caption, a picture's words).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from caprl_index.models import Caption, Chunk, Figure, ParsedPage, SourceFile

Tokenizer = Callable[[str], Sequence[object]]

# Keep a margin under the model window for the special tokens and tokenizer disagreement.
_WINDOW_MARGIN = 16


class Chunker:
    """Builds the chunks of one page from its text and its captioned figures."""

    def __init__(
        self,
        *,
        chunk_size: int = 200,
        chunk_overlap: int = 30,
        window: int = 256,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        size = min(chunk_size, max(32, window - _WINDOW_MARGIN))
        overlap = min(chunk_overlap, size // 4)
        self._text_splitter = _splitter(size, overlap, tokenizer)
        self._figure_splitter = _splitter(max(32, window - _WINDOW_MARGIN), overlap, tokenizer)

    def warm_up(self) -> None:
        """Split a long text once: LlamaIndex's sentence tokenizer loads NLTK's Punkt on its first split
        (0.3 s quiet, after ~1.2 s of importing LlamaIndex; 0.9 s more before `lean_imports`). The pipeline
        calls this on a thread at its start, so the first page's split does not stall the event loop."""
        self._text_splitter.split_text("A sentence to split. " * 200)

    def page_chunks(
        self,
        file: SourceFile,
        page_count: int,
        parsed: ParsedPage,
        captions: Sequence[Caption],
    ) -> list[Chunk]:
        """Text chunks of the page, then the chunks of each figure (same order as `parsed.figures`)."""
        return self.text_chunks(file, page_count, parsed) + self.figure_chunks(file, page_count, parsed, captions)

    def text_chunks(self, file: SourceFile, page_count: int, parsed: ParsedPage) -> list[Chunk]:
        """The page text's chunks (they need no caption, so they are stored while figures are captioned)."""
        return self._text_chunks(file, page_count, parsed)

    def figure_chunks(
        self, file: SourceFile, page_count: int, parsed: ParsedPage, captions: Sequence[Caption]
    ) -> list[Chunk]:
        """The chunks of each figure with its caption (same order as `parsed.figures`)."""
        chunks: list[Chunk] = []
        for figure, caption in zip(parsed.figures, captions, strict=True):
            chunks.extend(self._figure_chunks(file, page_count, parsed, figure, caption))
        return chunks

    def _text_chunks(self, file: SourceFile, page_count: int, parsed: ParsedPage) -> list[Chunk]:
        page = parsed.page
        body = page.text.strip()
        if page.extra_text.strip():
            body = f"{body}\n\n{page.extra_text.strip()}".strip()
        if not body:
            return []
        pieces = self._text_splitter.split_text(body)
        return [
            Chunk(text=t, file=file, page_count=page_count, page=page, kind="text", chunk_index=i)
            for i, t in enumerate(p for p in pieces if p.strip())
        ]

    def _figure_chunks(
        self, file: SourceFile, page_count: int, parsed: ParsedPage, figure: Figure, caption: Caption
    ) -> list[Chunk]:
        page = parsed.page
        text = figure_text(
            figure, caption, file_name=file.name, page_number=page.number, page_text=f"{page.text}\n{page.extra_text}"
        )
        pieces = [p for p in self._figure_splitter.split_text(text) if p.strip()] or [text]
        return [
            Chunk(
                text=piece,
                file=file,
                page_count=page_count,
                page=parsed.page,
                kind=figure.kind,
                chunk_index=i,
                figure=figure,
                caption=caption,
                region_index=figure.region_index,
            )
            for i, piece in enumerate(pieces)
        ]


def figure_text(figure: Figure, caption: Caption, *, file_name: str, page_number: int, page_text: str = "") -> str:
    """The searchable text of a figure; never empty, whatever the captioner managed.

    For a whole-page figure, lines of its text that `page_text` (the page's text point) holds already
    are left out.
    """
    label = "Slide" if figure.figure_type == "slide" else figure.figure_type.capitalize()
    parts: list[str] = []
    if figure.printed_caption.strip():
        parts.append(figure.printed_caption.strip())
    if caption.source == "vllm" and caption.text.strip():
        parts.append(caption.text.strip())
    ocr = figure.ocr_text.strip()
    if figure.kind == "page" and page_text.strip():
        ocr = _new_lines(ocr, page_text)
    if ocr and (caption.source != "vllm" or ocr not in caption.text):
        parts.append(f"Text in the {label.lower()}: {ocr}")
    if caption.source != "vllm" and figure.context_text.strip():
        parts.append(f"Nearby text: {figure.context_text.strip()}")
    if not parts and figure.kind == "page" and page_text.strip():
        parts.append(f"{label}: page {page_number} of {file_name} (its text is indexed as the page text).")
    if not parts:
        # Nothing readable in or around it: still say what and where it is, so it is never blank.
        parts.append(f"{label} on page {page_number} of {file_name} (no caption or text available).")
    return "\n\n".join(parts)


def _new_lines(text: str, known: str) -> str:
    """The lines of `text` that are not lines of `known` (whitespace-insensitive)."""
    seen = {" ".join(line.split()) for line in known.splitlines()}
    return "\n".join(line for line in text.splitlines() if " ".join(line.split()) not in seen).strip()


@lru_cache(maxsize=8)
def _cached_splitter(size: int, overlap: int) -> Any:
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=size, chunk_overlap=overlap)


def _splitter(size: int, overlap: int, tokenizer: Tokenizer | None) -> Any:
    from caprl_index import lean_imports

    lean_imports.install()  # before LlamaIndex imports NLTK: without SciPy's statistics and scikit-learn
    if tokenizer is None:
        return _cached_splitter(size, overlap)
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=size, chunk_overlap=overlap, tokenizer=tokenizer)
