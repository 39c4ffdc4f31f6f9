"""`Service`: the index held for the server's lifetime, and the library calls the routes make on it.

Every store call runs on the one `StoreThread`, every query embedding on the one `QueryEncoder`; ingest jobs
run `pipeline.ingest` on the job thread with that same store and store thread. Nothing here is a second
implementation: searches are `Searcher.search`, status is `report.collection_status`, ingest is
`pipeline.ingest`, delete is `QdrantStore.delete_file`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caprl_index.config import Settings
from caprl_index.search import Searcher, SearchFilters
from caprl_index.service.jobs import Job, JobReporter, JobRunner
from caprl_index.service.threads import QueryEncoder, StoreThread
from caprl_index.store import PointFilter, QdrantStore

if TYPE_CHECKING:
    from caprl_index.embedding import Embedder
    from caprl_index.evidence import ImageStore
    from caprl_index.models import RunStats

log = logging.getLogger("caprl_index.service")
QUERY_THREADS = min(2, os.cpu_count() or 1)  # query-encoder threads (NumPy releases the GIL in matrix products)


@dataclass(frozen=True)
class SearchRequest:
    """A search as the CLI's `search` takes it."""

    text: str
    k: int = 10
    filters: SearchFilters = dataclasses.field(default_factory=SearchFilters)
    group_by_page: bool = False
    hybrid: bool = True


class _Encoded:
    """An `Embedder` that knows one query's vector already (embedded on the encoder thread)."""

    def __init__(self, text: str, vector: list[float], name: str) -> None:
        self._text, self._vector, self.name = text, vector, name

    @property
    def dim(self) -> int:
        return len(self._vector)

    @property
    def max_tokens(self) -> int:
        return 256

    def tokenizer(self) -> Callable[[str], Sequence[object]]:
        return str.split

    def embed(self, texts: list[str]) -> list[list[float]]:
        if texts != [self._text]:
            raise ValueError("a pre-encoded query embeds only its own text")
        return [self._vector]


class Service:
    """One store, one query encoder, one job runner; `start()` opens them, `close()` releases them."""

    def __init__(
        self, settings: Settings, *, roots: Sequence[Path] | None = None, store: QdrantStore | None = None
    ) -> None:
        from caprl_index.evidence import open_image_store

        self.settings = settings
        self.roots = [Path(os.path.abspath(r)) for r in (roots or settings.ingest_roots or [Path.cwd()])]
        self.store = store or QdrantStore(settings)
        self.store_thread = StoreThread()
        self.images: ImageStore | None = open_image_store(settings)
        self.encoder: QueryEncoder | None = None
        self.jobs = JobRunner(self._run_job, nice=settings.serve_ingest_nice)
        self._ingest_embedder: Embedder | None = None
        self.on_close: list[Callable[[], None]] = []  # run once by close(): the server's own clean-up

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Open the index (taking its folder lock) and load the query model; errors name the fix."""
        from caprl_index.embedding import open_embedder
        from caprl_index.embedding.query import open_query_encoder

        self.store_thread.read(self.store.exists).result()
        # The NumPy copy of the model is small: one per thread, for both cores of a small machine. Without
        # one (another model, an embedding server) the full embedder, once.
        numpy_copies = [e for e in (open_query_encoder(self.settings) for _ in range(QUERY_THREADS)) if e]
        embedders: list[Embedder] = [*numpy_copies] or [open_embedder(self.settings)]
        self.encoder = QueryEncoder(embedders)
        self.encoder.warm_up()

    def close(self) -> None:
        """Cancel queued jobs, run what the store thread holds, close the index (flushed), stop threads."""
        while self.on_close:
            self.on_close.pop()()
        self.jobs.close()
        if self.encoder is not None:
            self.encoder.close()
        self.store_thread.shutdown(final=self.store.close)

    @property
    def ready(self) -> bool:
        return self.encoder is not None and self.store_thread.alive

    # --- reads (store thread) ---------------------------------------------------------------
    async def search(self, request: SearchRequest) -> list[dict[str, Any]]:
        """`search --json`'s objects for this request."""
        assert self.encoder is not None
        vector = await self.encoder.encode(request.text)
        return await self.store_thread.run_read(self._search, request, vector)

    def _search(self, request: SearchRequest, vector: list[float]) -> list[dict[str, Any]]:
        assert self.encoder is not None
        embedder = _Encoded(request.text, vector, self.encoder.embedder.name)
        searcher = Searcher(self.settings, embedder=embedder, store=self.store)
        hits = searcher.search(
            request.text,
            k=request.k,
            filters=request.filters,
            group_by_page=request.group_by_page,
            hybrid=request.hybrid,
        )
        return [h.as_json() for h in hits]

    async def status(self) -> dict[str, Any]:
        from caprl_index.report import collection_status

        return await self.store_thread.run_read(collection_status, self.store)

    async def files(self) -> list[dict[str, Any]]:
        return await self.store_thread.run_read(self._files)

    def _files(self) -> list[dict[str, Any]]:
        out = []
        for record in sorted(self.store.records().values(), key=lambda r: r.file_path):
            entry = record.to_payload()
            entry["failed"] = record.failed
            entry["missing_on_disk"] = not os.path.lexists(record.file_path)
            out.append(entry)
        return out

    async def point(self, point_id: str) -> dict[str, Any] | None:
        found = await self.store_thread.run_read(self.store.retrieve, [point_id])
        return {"id": found[0].id, "payload": found[0].payload} if found else None

    async def document(self, file_sha256: str) -> dict[str, Any] | None:
        return await self.store_thread.run_read(self._document, file_sha256)

    def _document(self, file_sha256: str) -> dict[str, Any] | None:
        """A file's record, its pages (size, whether a render exists) and its figures with their boxes."""
        record = next((r for r in self.store.records().values() if r.file_sha256 == file_sha256), None)
        if record is None:
            return None
        sizes: dict[int, tuple[float | None, float | None]] = {}
        figures = []
        for point in self.store.points(PointFilter(file_paths=(record.file_path,), file_sha256=file_sha256)):
            p = point.payload
            sizes.setdefault(int(p.get("page", 0)), (p.get("page_width"), p.get("page_height")))
            if p.get("kind") != "text":
                figures.append(_figure_entry(point.id, p))
        figures.sort(key=lambda f: (f["page"], f["bbox"] or [0.0]))
        common = statistics.mode(sizes.values()) if sizes else (None, None)
        pages = [
            {
                "page": n,
                "page_width": sizes.get(n, common)[0],
                "page_height": sizes.get(n, common)[1],
                "image": self._has_page_image(file_sha256, n),
            }
            for n in range(1, record.page_count + 1)
        ]
        return {"file": record.to_payload(), "pages": pages, "figures": figures}

    def page_size(self, file_sha256: str, page: int) -> tuple[float, float] | None:
        """The page's size in PDF points, from any of its points (store thread)."""
        flt = PointFilter(file_sha256=file_sha256, page_from=page, page_to=page)
        found, _ = self.store.engine.scroll(flt, limit=1) if self.store.exists() else ([], None)
        if not found or not found[0].payload.get("page_width"):
            return None
        return float(found[0].payload["page_width"]), float(found[0].payload["page_height"])

    def _has_page_image(self, file_sha256: str, page: int) -> bool:
        from caprl_index.evidence import page_key

        return self.images is not None and self.images.exists(page_key(file_sha256, page, thumb=True))

    # --- writes (job thread) ----------------------------------------------------------------
    def submit_ingest(self, paths: list[str], options: dict[str, Any]) -> Job:
        return self.jobs.submit(Job(kind="ingest", paths=paths, options=options))

    def submit_delete(self, paths: list[str]) -> Job:
        return self.jobs.submit(Job(kind="delete", paths=paths))

    def _run_job(self, job: Job) -> None:
        if job.kind == "delete":
            deleted = self.store_thread.submit(self._delete, job.paths).result()
            with job.lock:
                job.result = {"deleted": deleted}
            return
        stats, settings = self._ingest(job)
        with job.lock:
            job.summary = _summary(stats, settings)

    def _ingest(self, job: Job) -> tuple[RunStats, Settings]:
        from caprl_index.embedding import open_embedder
        from caprl_index.pipeline import IngestOptions, ingest

        overrides = {k: job.options[k] for k in ("captioner", "figures") if job.options.get(k) is not None}
        settings = self.settings.model_copy(update=overrides)
        if self._ingest_embedder is None:  # loaded once, on first use by the first job's (niced) embed thread
            self._ingest_embedder = open_embedder(self.settings)
        o = job.options
        options = IngestOptions(
            force=bool(o.get("force")), prune=bool(o.get("prune")), recaption=bool(o.get("recaption")),
            strict=bool(o.get("strict")),
        )  # fmt: skip
        stats = ingest(
            job.paths,
            settings,
            options,
            JobReporter(job),
            embedder=self._ingest_embedder,
            store=self.store,
            store_thread=self.store_thread,
        )
        return stats, settings

    def _delete(self, targets: list[str]) -> list[str]:
        """`caprl-index delete`: every indexed file at or under the targets, and its images (store thread)."""
        from caprl_index.commands.index import select_files
        from caprl_index.evidence.gc import remove_file

        doomed = select_files(self.store.records(), targets)
        for path in doomed:
            remove_file(self.store, self.images, path)
        return doomed


def _figure_entry(point_id: str, p: dict[str, Any]) -> dict[str, Any]:
    keys = ("page", "kind", "figure_type", "bbox", "caption_source", "image_sha256", "image_uri")
    return {"id": point_id, **{k: p.get(k) for k in keys}, "text": str(p.get("text", ""))[:300]}


def _summary(stats: RunStats, settings: Settings) -> dict[str, Any]:
    """The run's counters, with the CLI's summary lines and closing note."""
    from caprl_index.report import closing_note, summary_lines

    data = dataclasses.asdict(stats)
    latencies = data.pop("latencies")
    data["latency_p50_s"] = statistics.median(latencies) if latencies else None
    data["lines"] = summary_lines(stats)
    data["note"] = closing_note(stats, settings)
    return data
