"""Split stage: open a source file and parse it into pages with their figures.

    prepare(file, settings, workdir) -> PreparedDocument     validate, count pages, convert decks
    parse_pages(doc, start, stop, settings) -> [ParsedPage]  text, blocks, figures of a page range

Both run on worker processes and take and return picklable records. Failures specific to one file
raise DocumentError subclasses (UnsupportedFile, EncryptedFile, CorruptFile) whose message names the
file and the fix. The file's content decides how it is read; its extension only has to agree (a PNG
named .pdf is read as an image, with a warning).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile, UnsupportedFile
from caprl_index.models import ParsedPage, SourceFile
from caprl_index.sources.base import PreparedDocument
from caprl_index.sources.discover import IMAGE_EXTENSIONS, PDF_EXTENSIONS, SLIDE_EXTENSIONS

__all__ = ["PreparedDocument", "parse_pages", "prepare", "sniff"]

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"II*\x00", "image"),
    (b"MM\x00*", "image"),
    (b"PK\x03\x04", "zip"),  # pptx, odp, key
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),  # legacy .ppt
)


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file announce: pdf, image, zip, ole, or None when unknown."""
    if b"%PDF-" in head[:1024]:  # the header may follow some junk bytes; readers accept that
        return "pdf"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def prepare(file: SourceFile, settings: Settings, workdir: Path) -> PreparedDocument:
    """Validate `file` and make it ready for `parse_pages` (runs in a worker process)."""
    path = Path(file.path)
    suffix = path.suffix.lower()
    if suffix not in PDF_EXTENSIONS | SLIDE_EXTENSIONS | IMAGE_EXTENSIONS:
        raise UnsupportedFile(
            file.path,
            f"{suffix or 'no extension'} is not supported; supported: "
            + " ".join(sorted(PDF_EXTENSIONS | SLIDE_EXTENSIONS | IMAGE_EXTENSIONS)),
        )
    _check_size(file, settings)
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head:
        raise CorruptFile(file.path, "the file is empty (0 bytes); re-export or re-download it")
    if suffix in SLIDE_EXTENSIONS:
        from caprl_index.sources.slides import prepare_slides

        return prepare_slides(file, settings, workdir)
    kind = sniff(head)
    expected = "pdf" if suffix in PDF_EXTENSIONS else "image"
    doc = _prepare_as(kind, file, settings, workdir)
    if kind != expected:
        note = f"{file.path}: named {suffix} but the content is {kind.upper() if kind else 'unknown'}; read as such"
        doc = dataclasses.replace(doc, warnings=(*doc.warnings, note))
    return doc


def _prepare_as(kind: str | None, file: SourceFile, settings: Settings, workdir: Path) -> PreparedDocument:
    if kind == "pdf":
        from caprl_index.sources.pdf import prepare_pdf

        return prepare_pdf(file, settings, workdir)
    if kind == "image":
        from caprl_index.sources.images import prepare_image

        return prepare_image(file, settings, workdir)
    if kind in ("zip", "ole"):
        raise UnsupportedFile(
            file.path,
            "the content is an office document, not what the extension says; "
            "rename it to its real extension (.pptx, .ppt, .odp, .key)",
        )
    raise CorruptFile(
        file.path,
        "the content is neither a PDF nor a supported image (damaged, or a "
        "different format renamed); re-export or re-download it",
    )


def _check_size(file: SourceFile, settings: Settings) -> None:
    size_mb = file.size / 1_048_576
    if size_mb > settings.max_file_mb:
        raise CorruptFile(
            file.path,
            f"{size_mb:.0f} MB is over max_file_mb={settings.max_file_mb:g}; raise CAPRL_MAX_FILE_MB to index it",
        )


def parse_pages(doc: PreparedDocument, start: int, stop: int, settings: Settings) -> list[ParsedPage]:
    """Parse pages start..stop-1 (0-based) of a prepared document (runs in a worker process)."""
    if doc.pages is not None:
        return list(doc.pages[start:stop])
    if doc.format == "image" and doc.page_mode == "image":
        from caprl_index.sources.images import parse_image_pages

        return parse_image_pages(doc, start, stop, settings)
    from caprl_index.sources.pdf import parse_pdf_pages

    return parse_pdf_pages(doc, start, stop, settings)
