"""`CapRLReader`: PDFs, slide decks and images → LlamaIndex Documents, figures captioned by CapRL-3B.

    from llama_index.core import SimpleDirectoryReader
    from caprl_index.llama import CapRLReader

    with CapRLReader() as reader:               # Settings from CAPRL_* / caprl-index.toml, or settings=...
        docs = SimpleDirectoryReader("docs/", file_extractor=reader.file_extractor()).load_data()
        docs = await SimpleDirectoryReader(...).aload_data()          # async: the same Documents

One Document per page text and one per figure (an `ImageDocument` of the crop when images are kept),
carrying the keys the CLI stores on Qdrant points (`llama/documents.py`: ids, ref_doc_id, flat metadata).
Metadata is copied onto every node a splitter makes, so provenance survives any LlamaIndex pipeline.

In an `IngestionPipeline` with a docstore, use `docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY`: every
Document of a file shares the file's ref_doc_id, which LlamaIndex's default upsert strategy would take for
one document (and so re-embed every run). Unchanged Documents are skipped by their hash; a changed file
has new Document ids, and `CapRLVectorStore` drops its older version when the new one is added.

Parsing (PyMuPDF, the layout and OCR models) runs on the reader's own thread, whichever thread or event
loop calls it; `aload_data` awaits it there. Captions run on the reader's captioner thread meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path, PurePath
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from caprl_index.config import Settings
from caprl_index.llama.captions import CaptionSession
from caprl_index.llama.documents import document, page_chunks
from caprl_index.llama.thread import OneThread
from caprl_index.models import Caption, ParsedPage, SourceFile
from caprl_index.sources.discover import IMAGE_EXTENSIONS, PDF_EXTENSIONS, SLIDE_EXTENSIONS, source_file

__all__ = ["SUPPORTED_EXTENSIONS", "CapRLReader"]

PAGES_PER_BATCH = 8  # pages parsed while the previous batch's figures are being captioned
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(PDF_EXTENSIONS | SLIDE_EXTENSIONS | IMAGE_EXTENSIONS))
_log = logging.getLogger("caprl_index")
# The captioner's fallback warning is written for the CLI; a reader's user loads files again instead.
_CLI_ADVICE = "run `caprl-index ingest` again: it re-captions exactly those figures"
_READER_ADVICE = (
    "load the files again: those figures keep their Document ids and get new text, so an IngestionPipeline "
    "with a docstore re-embeds exactly them"
)


class CapRLReader(BaseReader):
    """Reads PDFs, slide decks and images into page-text and figure Documents, figures captioned by CapRL-3B.

    One captioner serves every file this reader loads (vLLM is probed once, captions are cached by image
    hash); call `close()` or use the reader as a context manager to release its threads and connections.
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        """`settings` (with `overrides` applied), else `Settings(**overrides)`: CAPRL_* env, caprl-index.toml."""
        if settings is None:
            self.settings = Settings(**overrides)
        else:  # validated, so overrides take the same forms as in Settings(...)
            self.settings = Settings.model_validate(settings.model_dump() | overrides) if overrides else settings
        self.warnings: list[str] = []  # captioner fallbacks etc., each once
        self._reset()

    def _reset(self) -> None:
        self._session: CaptionSession | None = None
        self._parser: OneThread | None = None
        self._lock = threading.Lock()

    def file_extractor(self) -> dict[str, BaseReader]:
        """``{".pdf": self, ".pptx": self, ...}`` for every supported extension, for SimpleDirectoryReader."""
        return {ext: self for ext in SUPPORTED_EXTENSIONS}

    def lazy_load_data(  # type: ignore[override]
        self,
        file: str | PurePath,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **_: Any,
    ) -> Iterator[Document]:
        """Documents of one file, page by page; `fs` (fsspec) is read through a local temporary copy."""
        return self._iter_file(str(file), dict(extra_info or {}), fs)

    def load_data(  # type: ignore[override]
        self, file: str | PurePath, extra_info: dict[str, Any] | None = None, fs: Any = None, **kwargs: Any
    ) -> list[Document]:
        """All Documents of one file."""
        return list(self.lazy_load_data(file, extra_info, fs, **kwargs))

    async def aload_data(  # type: ignore[override]
        self, file: str | PurePath, extra_info: dict[str, Any] | None = None, fs: Any = None, **kwargs: Any
    ) -> list[Document]:
        """All Documents of one file, awaited: files loaded concurrently are parsed one after another."""
        return await self._parse_thread().arun(self.load_data, file, extra_info, fs)

    def close(self) -> None:
        """Close the captioner and the parsing thread; the reader reopens them if used again."""
        with self._lock:
            session, self._session = self._session, None
            parser, self._parser = self._parser, None
        if session is not None:
            session.close()
        if parser is not None:
            parser.shutdown()

    def __enter__(self) -> CapRLReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # SimpleDirectoryReader(num_workers>1) pickles extractors into worker processes: each opens its own.
        return {"settings": self.settings, "warnings": list(self.warnings)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings = state["settings"]
        self.warnings = state["warnings"]
        self._reset()

    # --- one file ------------------------------------------------------------------------------
    def _iter_file(self, name: str, extra: dict[str, Any], fs: Any) -> Iterator[Document]:
        workdir = Path(tempfile.mkdtemp(prefix="caprl-reader-"))
        try:
            if _is_remote(fs):
                src = source_file(_local_copy(name, fs, workdir))
                # The provenance of a remote file is its fsspec path, not the temporary copy.
                shown = SourceFile(path=name, sha256=src.sha256, size=src.size)
            else:
                src = shown = source_file(Path(name).expanduser().resolve())
            yield from self._iter_pages(src, shown, extra, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _iter_pages(self, src: SourceFile, shown: SourceFile, extra: dict, workdir: Path) -> Iterator[Document]:
        from caprl_index.sources import prepare
        from caprl_index.workers import parse_batch

        parser = self._parse_thread()
        prepared = parser.run(prepare, src, self.settings, workdir)
        for warning in prepared.warnings:
            self._warn(warning)
        pending: tuple[list[ParsedPage], Future[list[list[Caption]]]] | None = None
        for start in range(0, prepared.page_count, PAGES_PER_BATCH):
            stop = min(start + PAGES_PER_BATCH, prepared.page_count)
            pages = parser.run(parse_batch, prepared, start, stop, self.settings)  # the CLI's, renders included
            if not self.settings.figures:
                pages = [dataclasses.replace(p, figures=()) for p in pages]
            # Caption this batch in the background while the previous one is turned into Documents.
            future = self._captions(pages)
            if pending is not None:
                yield from self._batch_documents(shown, prepared.page_count, pending, extra)
            pending = (pages, future)
        if pending is not None:
            yield from self._batch_documents(shown, prepared.page_count, pending, extra)

    def _captions(self, pages: list[ParsedPage]) -> Future[list[list[Caption]]]:
        figures = [list(p.figures) for p in pages]
        if not any(figures):
            done: Future[list[list[Caption]]] = Future()
            done.set_result([[] for _ in pages])
            return done
        return self._caption_session().submit(figures)

    def _caption_session(self) -> CaptionSession:
        with self._lock:
            if self._session is None:
                self._session = CaptionSession(self.settings, self._warn)
            return self._session

    def _parse_thread(self) -> OneThread:
        with self._lock:
            if self._parser is None:
                self._parser = OneThread("caprl-reader-parse")
            return self._parser

    def _batch_documents(
        self,
        src: SourceFile,
        page_count: int,
        batch: tuple[list[ParsedPage], Future[list[list[Caption]]]],
        extra: dict,
    ) -> Iterator[Document]:
        from caprl_index.evidence import open_image_store
        from caprl_index.evidence.keep import PageImages, save_images

        pages, future = batch
        images = open_image_store(self.settings)
        kept = save_images(images, src.sha256, pages) if images is not None else PageImages()
        for parsed, captions in zip(pages, future.result(), strict=True):
            for chunk in page_chunks(src, page_count, parsed, captions):
                yield document(kept.attach(chunk), extra, images)

    def _warn(self, message: str) -> None:
        message = message.replace(_CLI_ADVICE, _READER_ADVICE)
        if message not in self.warnings:
            self.warnings.append(message)
            _log.warning("%s", message)


def _is_remote(fs: Any) -> bool:
    if fs is None:
        return False
    protocol = getattr(fs, "protocol", "file")
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return not {"file", "local"} & set(protocols)


def _local_copy(name: str, fs: Any, workdir: Path) -> Path:
    local = workdir / ("input" + PurePath(name).suffix)
    with fs.open(name, "rb") as remote, open(local, "wb") as out:
        shutil.copyfileobj(remote, out, 1 << 20)
    return local
