"""LlamaIndex integration: `CapRLReader` (files → Documents) and `CapRLEmbedding` (the index's embedder).

    from llama_index.core import SimpleDirectoryReader
    from caprl_index.reader import CapRLReader

    with CapRLReader() as reader:               # Settings from CAPRL_* / caprl-index.toml, or settings=...
        docs = SimpleDirectoryReader("docs/", file_extractor=reader.file_extractor()).load_data()

One Document per page text and one per figure (or captioned whole page: slides, scans), carrying the keys
the CLI stores on Qdrant points (file_path, file_name, file_sha256, page, page_count, kind, figure_type,
bbox, page_width, page_height, caption_source, caption_model, prompt_version, image_sha256, chunk_index).
Metadata is copied onto every node a splitter makes, so provenance survives any LlamaIndex pipeline.

Metadata merge: the ``extra_info`` a caller passes (SimpleDirectoryReader passes file_path, file_name,
file_type, file_size and dates) is kept, but our provenance keys win where both name one: ``file_path``
is always the absolute path, as the CLI writes it.

`CapRLEmbedding` is a LlamaIndex `BaseEmbedding` over the configured caprl-index embedder, so a stock
`QdrantVectorStore` over a CLI-built collection is queried with the model that wrote it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path, PurePath
from typing import Any, TypeVar

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from caprl_index.chunking import figure_text
from caprl_index.config import Settings
from caprl_index.embedding import Embedder, open_embedder
from caprl_index.models import Caption, Chunk, Figure, ParsedPage, SourceFile
from caprl_index.sources.discover import IMAGE_EXTENSIONS, PDF_EXTENSIONS, SLIDE_EXTENSIONS, source_file
from caprl_index.store.payload import _HIDDEN_KEYS, document_id, metadata, point_id

__all__ = ["CapRLEmbedding", "CapRLReader"]

T = TypeVar("T")
PAGES_PER_BATCH = 8  # pages parsed while the previous batch's figures are being captioned
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(PDF_EXTENSIONS | SLIDE_EXTENSIONS | IMAGE_EXTENSIONS))
_log = logging.getLogger("caprl_index")


class CapRLReader(BaseReader):
    """Reads PDFs, slide decks and images into page-text and figure Documents, figures captioned by CapRL-3B.

    One captioner serves every file this reader loads (vLLM is probed once, captions are cached by image
    hash); call `close()` or use the reader as a context manager to release its HTTP connections.
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        """`settings` (with `overrides` applied), else `Settings(**overrides)`: CAPRL_* env, caprl-index.toml."""
        if settings is None:
            self.settings = Settings(**overrides)
        else:  # validated, so overrides take the same forms as in Settings(...)
            self.settings = Settings.model_validate(settings.model_dump() | overrides) if overrides else settings
        self.warnings: list[str] = []  # captioner fallbacks etc., each once
        self._session: _CaptionSession | None = None
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

    def close(self) -> None:
        """Close the captioner and its event loop; the reader reopens them if used again."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

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
        self._session = None
        self._lock = threading.Lock()

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
        from caprl_index.sources import parse_pages, prepare

        prepared = prepare(src, self.settings, workdir)
        for warning in prepared.warnings:
            self._warn(warning)
        pending: tuple[list[ParsedPage], Future[list[list[Caption]]]] | None = None
        for start in range(0, prepared.page_count, PAGES_PER_BATCH):
            pages = parse_pages(prepared, start, min(start + PAGES_PER_BATCH, prepared.page_count), self.settings)
            if not self.settings.figures:
                pages = [ParsedPage(page=p.page) for p in pages]
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

    def _caption_session(self) -> _CaptionSession:
        with self._lock:
            if self._session is None:
                self._session = _CaptionSession(self.settings, self._warn)
            return self._session

    def _batch_documents(
        self,
        src: SourceFile,
        page_count: int,
        batch: tuple[list[ParsedPage], Future[list[list[Caption]]]],
        extra: dict,
    ) -> Iterator[Document]:
        pages, future = batch
        for parsed, captions in zip(pages, future.result(), strict=True):
            for chunk in _page_chunks(src, page_count, parsed, captions):
                yield _document(chunk, extra)

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            _log.warning("%s", message)


class _CaptionSession:
    """One captioner on a private event loop in a daemon thread, shared by every file a reader loads.

    A thread of its own, not asyncio.run per call: the reader may be called from a thread that already
    runs a loop (Jupyter, `aload_data`), and the captioner's HTTP client must live on one loop.
    """

    def __init__(self, settings: Settings, warn: Any) -> None:
        self._settings = settings
        self._warn = warn
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="caprl-reader-captions", daemon=True)
        self._thread.start()
        self._captioner: Any = None
        self._opening = asyncio.Lock()

    def submit(self, figures: list[list[Figure]]) -> Future[list[list[Caption]]]:
        return self._run(self._caption_all(figures))

    async def _caption_all(self, figures: list[list[Figure]]) -> list[list[Caption]]:
        captioner = await self._open()
        flat = await asyncio.gather(*(captioner.caption(f) for page in figures for f in page))
        out, i = [], 0
        for page in figures:
            out.append(list(flat[i : i + len(page)]))
            i += len(page)
        return out

    async def _open(self) -> Any:
        async with self._opening:  # batches may arrive together: probe vLLM once, not once per batch
            if self._captioner is None:
                from caprl_index.captioning import open_captioner

                self._captioner = await open_captioner(self._settings, warn=self._warn)
        return self._captioner

    def close(self) -> None:
        if self._captioner is not None:
            self._run(self._captioner.aclose()).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)


def _page_chunks(src: SourceFile, page_count: int, parsed: ParsedPage, captions: list[Caption]) -> Iterator[Chunk]:
    """The page's text as one chunk, then one chunk per figure: splitting is the pipeline's job."""
    page = parsed.page
    body = "\n\n".join(t for t in (page.text.strip(), page.extra_text.strip()) if t)
    if body:
        yield Chunk(text=body, file=src, page_count=page_count, page=page, kind="text", chunk_index=0)
    for fig, cap in zip(parsed.figures, captions, strict=True):
        yield Chunk(
            text=figure_text(fig, cap, file_name=src.name, page_number=page.number, page_text=body),
            file=src,
            page_count=page_count,
            page=page,
            kind=fig.kind,
            chunk_index=0,
            figure=fig,
            caption=cap,
            region_index=fig.region_index,
        )


def _document(chunk: Chunk, extra: dict[str, Any]) -> Document:
    """A Document with the CLI's metadata; its id is the CLI's point id of the chunk (stable across runs)."""
    hidden = [*_HIDDEN_KEYS, "source_document_id"]
    return Document(
        id_=point_id(chunk),
        text=chunk.text,
        # source_document_id is the doc_id the CLI gives every point of the file: filter on it to match them.
        metadata={**extra, **metadata(chunk), "source_document_id": document_id(chunk.file.path)},
        excluded_embed_metadata_keys=list(hidden),
        excluded_llm_metadata_keys=list(hidden),
    )


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


class CapRLEmbedding(BaseEmbedding):
    """LlamaIndex embedding over caprl-index's embedder (default: the packaged all-MiniLM-L6-v2).

    Use it as ``embed_model`` with a stock QdrantVectorStore over a collection the CLI built, or as the
    last transformation of an IngestionPipeline. Pass ``embedder=`` to share an already loaded model.
    """

    _embedder: Embedder = PrivateAttr()

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None, **kwargs: Any) -> None:
        settings = settings or Settings()
        embedder = embedder or open_embedder(settings)
        kwargs.setdefault("embed_batch_size", settings.embed_batch_size)
        super().__init__(model_name=embedder.name, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "CapRLEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(list(texts))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
