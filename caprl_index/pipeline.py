"""Streamed ingest: discover → split → detect → caption → chunk → embed → store.

Files are split on worker processes in page batches while captions of earlier batches are in flight and
finished batches are embedded and upserted. Semaphores bound the batches alive at once, so memory stays
flat whatever the corpus size; a batch that only waits for captions leaves them for a byte-bounded caption
backlog, so parsing goes on while the caption server catches up. Per-file errors are collected; the run goes
on, and a file that fails stops its other batches first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from caprl_index.chunking import Chunker
from caprl_index.config import Settings
from caprl_index.embedding import Embedder, open_embedder
from caprl_index.errors import CaprlError, ConfigError, DocumentError, EmbeddingFailed
from caprl_index.evidence import open_image_store
from caprl_index.evidence.gc import remove_file
from caprl_index.evidence.keep import PageImages, save_images
from caprl_index.flow import ByteBudget, Slot
from caprl_index.models import Caption, Chunk, Figure, FileFailure, ParsedPage, RunStats, SourceFile
from caprl_index.plan import FilePlan, fingerprint, plan_files
from caprl_index.progress import Reporter
from caprl_index.store import NewPoint, QdrantStore, payload, point_id
from caprl_index.store.sparse import document_vector
from caprl_index.versions import count_file, discard_partial, file_record, record_failure, replace_version
from caprl_index.workers import SplitPool, parse_batch

T = TypeVar("T")
PAGES_PER_BATCH = 8
# Parsed batches held at once (page renders, thumbnails, crops, text): at most this many bytes (flow.py), and
# at most max(8, 4 x workers) batches. Typical reports hold ~1.5 MB a batch, so the count decides; 8-page
# batches of high-resolution scans or photos reach tens of MB each, and then the bytes do.
IN_FLIGHT_BYTES = 64 << 20
FIRST_BATCH_BYTES = PAGES_PER_BATCH * 256 * 1024  # the estimate until a batch has been parsed
# A batch whose text is stored but whose figures still wait for captions gives its slot back, so the next
# pages are parsed while the caption server catches up: a backlog built on figure-rich pages is worked off
# on text-only ones instead of leaving the GPU idle there. Its crops (~130 KB each on real reports) count
# here instead, up to this many bytes: ~250 figures, about a minute's work for a GPU taking 4 captions/s.
CAPTION_BACKLOG_BYTES = 32 << 20


@dataclass(frozen=True)
class IngestOptions:
    """Per-run switches of `ingest` (the rest is Settings)."""

    force: bool = False  # re-ingest unchanged files
    prune: bool = False  # drop files no longer on disk
    recaption: bool = False  # re-caption figures written with another prompt version
    shard: tuple[int, int] | None = None  # (i, n): this machine's part of the corpus
    strict: bool = False  # raise the first per-file error instead of collecting it


def ingest(
    paths: Sequence[str | Path],
    settings: Settings,
    options: IngestOptions | None = None,
    reporter: Reporter | None = None,
    *,
    embedder: Embedder | None = None,
    store: QdrantStore | None = None,
    store_thread: Executor | None = None,
) -> RunStats:
    """Ingest files and folders into the configured collection; returns the run's counters.

    `store` (default: the one the settings name) is closed when the run ends. A caller that owns the store
    beyond the run (`caprl-index serve`) passes `store_thread` too: the single-thread executor on which
    every call on that store must run. The run then sends its store calls there and leaves both open.
    """
    if store_thread is not None and store is None:
        raise TypeError("ingest(store_thread=...) needs the store that thread owns: pass store= too")
    run = _Run(settings, options or IngestOptions(), reporter or Reporter(), embedder, store, store_thread)
    return asyncio.run(run.execute(paths))


class _Run:
    def __init__(
        self,
        settings: Settings,
        options: IngestOptions,
        reporter: Reporter,
        embedder: Embedder | None,
        store: QdrantStore | None,
        store_thread: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.reporter = reporter
        self.stats = RunStats()
        self.store = store or QdrantStore(settings)
        self.images = open_image_store(settings)
        self.embedder = embedder or open_embedder(settings)
        self.captioner: Any = None
        self.chunker: Chunker | None = None
        self._split: SplitPool | None = None
        self._chunker_ready: asyncio.Future[Chunker]
        # One thread each: the embedded Qdrant client and the model are used from one thread at a time.
        self._owns_store = store_thread is None
        self._store_thread = store_thread or ThreadPoolExecutor(1, thread_name_prefix="caprl-store")
        self._embed_thread = ThreadPoolExecutor(1, thread_name_prefix="caprl-embed")
        workers = settings.worker_count
        self._batch_slots = asyncio.Semaphore(batch_slots(workers))
        self._held_bytes = ByteBudget(IN_FLIGHT_BYTES, first_estimate=FIRST_BATCH_BYTES)
        self._caption_backlog = ByteBudget(CAPTION_BACKLOG_BYTES, first_estimate=0)
        self._file_slots = asyncio.Semaphore(max(4, 2 * workers))

    async def execute(self, paths: Sequence[str | Path]) -> RunStats:
        try:
            plan = await self._in_store(plan_files, paths, self.store, self.settings, self.options, self.embedder.name)
            await self._apply_plan(plan)
            if plan.todo or plan.pending or plan.stale_prompt:
                await self._ingest_files(plan)
            return self.stats
        finally:
            await self._shutdown()

    async def _apply_plan(self, plan: FilePlan) -> None:
        self.stats.files_seen = plan.seen
        self.stats.files_skipped = len(plan.skipped)
        for failure in plan.failures:
            # Recorded even in a new index (before the model has loaded): `status` lists every failure.
            await self._in_store(record_failure, self.store, failure.path, None, failure.reason)
            self._fail(failure.path, failure.reason)
        if plan.repaired:
            self._warn_once(
                f"{len(plan.repaired)} file(s) had lost points (storage lost, or deleted through LlamaIndex): "
                "re-indexing them"
            )
        for path in plan.prune:
            await self._in_store(remove_file, self.store, self.images, path)
            self.stats.files_pruned += 1

    async def _ingest_files(self, plan: FilePlan) -> None:
        todo = list(plan.todo)
        if todo:  # the workers start and the model loads while the captioner looks for its server
            self._start_workers()
        if self.settings.figures:
            from caprl_index.captioning import open_captioner

            self.captioner = await open_captioner(self.settings, warn=self._warn_once)
            self.stats.captioner = _captioner_source(self.captioner)
            if self._captions_upgradable():
                # Figures indexed with OCR text earlier (or with an old prompt): caption them now.
                todo += plan.pending + plan.stale_prompt
            else:
                self.stats.files_skipped += len(plan.pending) + len(plan.stale_prompt)
        else:
            self.stats.files_skipped += len(plan.pending) + len(plan.stale_prompt)
        if not todo:
            return
        self.reporter.start(len(todo))
        try:
            self._start_workers()
            await asyncio.gather(*(self._guarded_file(f) for f in todo))
            await self._chunker_ready  # a model that failed to load is reported even when no page got that far
            if self.stats.points:
                await self._in_store(self.store.optimize)  # the bulk load is done: build the indexes
        finally:
            self.reporter.stop()

    def _start_workers(self) -> None:
        """Start the parser processes and the model's load (once): workers parse while the model loads."""
        if self._split is None:
            self._split = SplitPool(
                self.settings.worker_count, ocr_process=self.settings.ocr_process, ocr_engines=self.settings.ocr_engines
            )
            self._chunker_ready = asyncio.ensure_future(self._load_model())

    async def _load_model(self) -> Chunker:
        """Load the embedding model, create the collection with its size, and build the chunker."""
        try:
            dim = await self._in_embed(lambda: self.embedder.dim)
        except EmbeddingFailed as exc:  # unreachable at the start: a configuration problem, not a file's
            raise ConfigError(f"{exc}. Check CAPRL_EMBED_URL / CAPRL_EMBED_API_KEY.") from exc
        await self._in_store(self.store.ensure_collection, dim)
        # LlamaIndex's splitter takes ~1.5 s to import and to split its first text on a cold start (twice that
        # while the workers start beside it), the embedding model ~0.3 s to load: both now, beside each other
        # and off the event loop, while the first pages parse.
        chunker = asyncio.to_thread(
            _warm_chunker,
            chunk_size=self.settings.chunk_size,
            chunk_overlap=self.settings.chunk_overlap,
            window=await self._in_embed(lambda: self.embedder.max_tokens),
            tokenizer=await self._in_embed(self.embedder.tokenizer),
        )
        load: Callable[[], object] | None = getattr(self.embedder, "load", None)
        built, _ = await asyncio.gather(chunker, self._in_embed(load) if load else asyncio.sleep(0))
        self.chunker = built
        return built

    def _captions_upgradable(self) -> bool:
        return _captioner_source(self.captioner) == "vllm"

    async def _guarded_file(self, file: SourceFile) -> None:
        async with Slot(self._file_slots) as slot:
            try:
                await self._process_file(file, slot.release)
            except DocumentError as exc:
                await self._file_failed(file, exc.reason)
                if self.options.strict:
                    raise
            except EmbeddingFailed as exc:
                await self._file_failed(file, f"{exc}; the next ingest retries it")
                if self.options.strict:
                    raise
            except CaprlError:
                raise
            except Exception as exc:  # a bug or a library error on one file must not end the run
                await self._file_failed(file, f"{type(exc).__name__}: {exc}")
                if self.options.strict:
                    raise

    async def _file_failed(self, file: SourceFile, reason: str) -> None:
        await self._in_store(discard_partial, self.store, self.images, file)
        await self._in_store(record_failure, self.store, file.path, file, reason)
        self._fail(file.path, reason)

    async def _process_file(self, file: SourceFile, parsed: Callable[[], None]) -> None:
        """Split, embed and store one file; `parsed()` is called once every page is parsed and its text stored
        (what is left is waiting for captions: the file's slot goes to the next file)."""
        from caprl_index.sources import prepare

        workdir = tempfile.mkdtemp(prefix="caprl-")
        try:
            prepared = await self._in_pool(prepare, file, self.settings, Path(workdir))
            self.reporter.file_started(file.path, prepared.page_count)
            for warning in prepared.warnings:
                self._warn_once(warning)
            ranges = [
                (s, min(s + PAGES_PER_BATCH, prepared.page_count))
                for s in range(0, prepared.page_count, PAGES_PER_BATCH)
            ]
            left = len(ranges)

            def batch_parsed() -> None:
                nonlocal left
                left -= 1
                if left == 0:
                    parsed()

            batches = [asyncio.ensure_future(self._process_batch(prepared, a, b, batch_parsed)) for a, b in ranges]
            try:
                results = await asyncio.gather(*batches)
            except BaseException:  # the file fails as a whole: its other batches stop before it is cleaned up
                for batch in batches:
                    batch.cancel()
                await asyncio.gather(*batches, return_exceptions=True)
                raise
            await self._finish_file(file, prepared.page_count, results)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def _process_batch(self, prepared: Any, start: int, stop: int, parsed: Callable[[], None]) -> _BatchResult:
        captioning: asyncio.Future[list[list[Caption]]] | None = None
        try:
            async with contextlib.AsyncExitStack() as backlog:
                async with self._batch_slots, self._held_bytes.hold() as settle:
                    pages: list[ParsedPage] = await self._in_pool(parse_batch, prepared, start, stop, self.settings)
                    await settle(sum(map(_page_bytes, pages)))
                    if not self.settings.figures:
                        pages = [dataclasses.replace(p, figures=()) for p in pages]
                    images = await self._keep_images(prepared.file, pages)  # before any point refers to them
                    n_fig = sum(len(p.figures) for p in pages)
                    self.reporter.pages_done(len(pages), n_fig)
                    # Captions run while the page text is embedded and stored: text never waits for the GPU.
                    captioning = asyncio.ensure_future(asyncio.gather(*(self._caption(p.figures) for p in pages)))
                    captioning.add_done_callback(_retrieved)  # its error is raised below, or superseded by another
                    chunker = await asyncio.shield(self._chunker_ready)
                    file, count = prepared.file, prepared.page_count
                    texts = [images.attach(c) for p in pages for c in chunker.text_chunks(file, count, p)]
                    ids = await self._store_chunks(texts)
                    if not captioning.done():  # wait out of the batch's slot, its crops in the caption backlog
                        crops = sum(len(f.image) for p in pages for f in p.figures)
                        await backlog.enter_async_context(self._caption_backlog.hold(crops))
                    pages = [dataclasses.replace(p, render=None, thumb=None) for p in pages]  # kept on disk
                parsed()
                captions = await captioning
            figure_chunks = [
                images.attach(c)
                for p, caps in zip(pages, captions, strict=True)
                for c in chunker.figure_chunks(file, count, p, caps)
            ]
            ids += await self._store_chunks(figure_chunks)
        finally:
            if captioning is not None and not captioning.done():
                captioning.cancel()
        flat = [cap for caps in captions for cap in caps]
        return _BatchResult(ids=ids, pages=len(pages), captions=flat)

    async def _keep_images(self, file: SourceFile, pages: list[ParsedPage]) -> PageImages:
        """Write the batch's page renders and crops to the image store (file IO: a worker thread)."""
        if self.images is None:
            return PageImages()
        return await asyncio.to_thread(save_images, self.images, file.sha256, pages)

    async def _store_chunks(self, chunks: list[Chunk]) -> list[str]:
        """Embed (what is not stored already) and upsert chunks; their point ids."""
        if not chunks:
            return []
        ids = [point_id(c) for c in chunks]
        vectors = await self._vectors(ids, [c.text for c in chunks])
        points = [
            NewPoint(pid, vec, document_vector(c.text), payload(c))
            for pid, vec, c in zip(ids, vectors, chunks, strict=True)
        ]
        await self._in_store(self.store.upsert, points)
        return ids

    async def _caption(self, figures: Sequence[Figure]) -> list[Caption]:
        """Captions of one page's figures (only the figures are kept alive for this, not the page's renders)."""
        if not figures:
            return []
        captions = await asyncio.gather(*(self.captioner.caption(f) for f in figures))
        self.reporter.captions_done(len(captions))
        return list(captions)

    async def _vectors(self, ids: list[str], texts: list[str]) -> list[list[float]]:
        """Embed only what is not already stored with the same text (re-runs, caption upgrades)."""
        stored = await self._in_store(self.store.stored_vectors, ids)
        missing = [i for i, (pid, t) in enumerate(zip(ids, texts, strict=True)) if stored.get(pid, ("", None))[0] != t]
        fresh = await self._in_embed(self.embedder.embed, [texts[i] for i in missing])
        by_index = dict(zip(missing, fresh, strict=True))
        return [by_index[i] if i in by_index else stored[pid][1] for i, pid in enumerate(ids)]

    async def _finish_file(self, file: SourceFile, page_count: int, results: list[_BatchResult]) -> None:
        ids = [pid for r in results for pid in r.ids]
        captions = [c for r in results for c in r.captions]
        record = file_record(file, page_count, len(ids), captions, fingerprint(self.settings, self.embedder.name))
        await self._in_store(replace_version, self.store, self.images, file, ids, record)
        count_file(self.stats, page_count, len(ids), captions)
        self.reporter.file_done(file.path, True, f"{page_count} pages, {len(captions)} figures")

    def _fail(self, path: str, reason: str) -> None:
        self.stats.files_failed += 1
        self.stats.failures.append(FileFailure(path=path, reason=reason))
        self.reporter.file_done(path, False, reason)

    def _warn_once(self, message: str) -> None:
        if message not in self.stats.warnings:
            self.stats.warnings.append(message)
            self.reporter.warn(message)

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._split is not None
        return await self._split.run(fn, *args)

    async def _in_store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, fn, *args)

    async def _in_embed(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._embed_thread, fn, *args)

    async def _shutdown(self) -> None:
        # A run that ended early (strict mode, a configuration error) may leave the model still loading:
        # stop it before its threads go, or it fails later on a closed executor, unseen but logged.
        ready: asyncio.Future[Chunker] | None = getattr(self, "_chunker_ready", None)
        if ready is not None:
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
        if self.captioner is not None:
            await self.captioner.aclose()
        if self._split is not None:
            self._split.shutdown()
        self._embed_thread.shutdown(wait=True)
        if self._owns_store:
            await asyncio.get_running_loop().run_in_executor(self._store_thread, self.store.close)
            self._store_thread.shutdown(wait=True)


@dataclass(frozen=True)
class _BatchResult:
    ids: list[str]
    pages: int
    captions: list[Caption]


def batch_slots(workers: int) -> int:
    """Batches parsed, or embedded and stored, at once (those waiting only for captions are not counted)."""
    return max(8, 4 * workers)


def _warm_chunker(**kwargs: Any) -> Chunker:
    chunker = Chunker(**kwargs)
    chunker.warm_up()
    return chunker


def _page_bytes(page: ParsedPage) -> int:
    """What a parsed page holds in memory until its chunks are stored (its images and its text)."""
    images = len(page.render or b"") + len(page.thumb or b"") + sum(len(f.image) for f in page.figures)
    return images + len(page.page.text)


def _captioner_source(captioner: Any) -> str:
    """The caption_source a captioner writes: vllm, ocr or none."""
    from caprl_index.captioning.base import NoneCaptioner, OcrCaptioner

    if isinstance(captioner, OcrCaptioner):
        return "ocr"
    return "none" if isinstance(captioner, NoneCaptioner) else "vllm"


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a background future's outcome as seen (no "exception was never retrieved" at shutdown)."""
    if not future.cancelled():
        future.exception()
