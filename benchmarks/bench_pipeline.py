"""End-to-end benchmark: are the stages overlapped, is memory flat, is an unchanged re-ingest free?

Measures, in one run and on the same files (default: ../shared/data/pdf, about 300 pages):
  split   prepare + parse_pages of every page on the worker pool (figure detection and crops included)
  caption every figure against the simulated vLLM (FakeVLLM: latency per output token, fixed slots)
  embed   every chunk text with the configured embedder
  e2e     `ingest` from scratch (fresh index and caption cache, default embedder, a process of its own)
          — target <= 1.1 x the slowest stage
  reingest the same `ingest` again — target: zero caption and embedding calls, >= 200 files/s
and the peak RSS of the process tree during e2e (target on 1,000 pages: <= 1.5 GB), from an RSS timeline
of every process (parent, parser workers, the OCR process) tagged by stage (rss_timeline.py; --rss-csv
keeps it); figures detected per second per core (split) and the simulated vLLM's utilisation during e2e.
--compare-ocr-in-workers runs e2e a second time, on the same pages, with an OCR engine in every worker
(the layout before the OCR process) for a before/after in one run; `--variant NAME:KEY=VALUE,...` runs it
again with other settings (`--compare-lean` = lean:ocr_engines=1; `torch:embed_backend=torch` = documents
on sentence-transformers); `--embed-server` runs it again with documents embedded by a loopback
/v1/embeddings server (the GPU box embedding as well as captioning: what 2 cores feed a GPU without the
embedding model's CPU time). Each run's CPU seconds by process role say where the cores went.

    python benchmarks/bench_pipeline.py [--corpus DIR ...] [--max-pages N] [--slots 16] [--ms-per-token 2]
        [--rss-csv FILE] [--compare-ocr-in-workers] [--e2e-only] [--embed-server] [--variant NAME:KEY=VALUE,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caprl_index.config import Settings  # noqa: E402
from caprl_index.pipeline import ingest  # noqa: E402
from caprl_index.sources.discover import iter_paths, source_file  # noqa: E402
from caprl_index.testing.fake_embeddings import FakeEmbeddings  # noqa: E402
from caprl_index.testing.fake_vllm import FakeVLLM  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from rss_timeline import RssTimeline  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "pdf"


class CountingEmbedder:
    def __init__(self, inner) -> None:
        self.inner, self.name, self.calls, self.texts = inner, inner.name, 0, 0

    dim = property(lambda self: self.inner.dim)
    max_tokens = property(lambda self: self.inner.max_tokens)

    def tokenizer(self):
        return self.inner.tokenizer()

    def embed(self, texts):
        self.calls += bool(texts)
        self.texts += len(texts)
        return self.inner.embed(texts)


def page_count(files: list[Path]) -> int:
    import pymupdf

    total = 0
    for path in files:
        with pymupdf.open(path) as doc:
            total += doc.page_count
    return total


def pick_files(corpus: list[Path], max_pages: int) -> list[Path]:
    import pymupdf

    chosen, pages = [], 0
    for path in iter_paths(corpus):
        if path.suffix.lower() != ".pdf":
            continue
        try:
            with pymupdf.open(path) as doc:
                n = doc.page_count
        except Exception:
            continue
        if pages + n > max_pages and chosen:
            continue
        chosen.append(path)
        pages += n
    return chosen


def stage_split(files: list[Path], settings: Settings) -> tuple[float, list]:
    """prepare + parse every page batch on the pipeline's own pool (its workers and OCR process)."""
    from caprl_index.sources import prepare
    from caprl_index.workers import SplitPool, parse_batch

    async def run(work: Path) -> list:
        pool = SplitPool(settings.worker_count, ocr_process=settings.ocr_process)
        try:
            docs = await asyncio.gather(*(pool.run(prepare, source_file(f), settings, work) for f in files))
            batches = [pool.run(parse_batch, d, s, min(s + 8, d.page_count), settings)
                       for d in docs for s in range(0, d.page_count, 8)]  # fmt: skip
            return [p for batch in await asyncio.gather(*batches) for p in batch]
        finally:
            pool.shutdown()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        parsed = asyncio.run(run(Path(work)))
    return time.perf_counter() - start, parsed


def stage_caption(pages: list, settings: Settings) -> tuple[float, int]:
    from caprl_index.captioning import open_captioner

    figures = [f for p in pages for f in p.figures]

    async def run() -> None:
        captioner = await open_captioner(settings, warn=print)
        try:
            await asyncio.gather(*(captioner.caption(f) for f in figures))
        finally:
            await captioner.aclose()

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start, len(figures)


def stage_embed(pages: list, embedder, settings: Settings) -> tuple[float, list, list]:
    from caprl_index.chunking import Chunker
    from caprl_index.models import Caption, SourceFile

    chunker = Chunker(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                      window=embedder.max_tokens, tokenizer=embedder.tokenizer())  # fmt: skip
    src = SourceFile(path="/bench.pdf", sha256="0" * 64, size=0)
    chunks = []
    for n, p in enumerate(pages, 1):
        caps = [Caption(text="x " * 600, source="vllm") for _ in p.figures]  # caption-sized figure text
        chunks += chunker.page_chunks(src, n, p, caps)
    texts = [c.text for c in chunks]
    start = time.perf_counter()
    vectors = []
    for i in range(0, len(texts), 64):
        vectors += embedder.embed(texts[i : i + 64])
    return time.perf_counter() - start, chunks, vectors


def stage_store(chunks: list, vectors: list, dim: int, settings: Settings) -> float:
    """Upsert the embedded chunks into a fresh embedded store, in the pipeline's batch size, then optimize."""
    from caprl_index.store import NewPoint, QdrantStore, payload, point_id
    from caprl_index.store.sparse import document_vector

    start = time.perf_counter()
    store = QdrantStore(settings)
    try:
        store.ensure_collection(dim)
        for i in range(0, len(chunks), 64):
            part = zip(chunks[i : i + 64], vectors[i : i + 64], strict=True)
            store.upsert([NewPoint(point_id(c), list(v), document_vector(c.text), payload(c)) for c, v in part])
        store.optimize()
    finally:
        store.close()
    return time.perf_counter() - start


class StageReporter:
    """Calls `on_drain` when the last page is parsed: the RSS timeline's `e2e:split` becomes `e2e:drain`
    (the captions, embeddings and upserts still in flight)."""

    def __init__(self, total_pages: int, on_drain) -> None:
        from caprl_index.progress import Reporter

        self.inner, self.left, self.on_drain = Reporter(), total_pages, on_drain

    def pages_done(self, n: int, figures: int) -> None:
        self.left -= n
        if self.left <= 0 < self.left + n:
            self.on_drain()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def run_e2e(files: list[Path], settings: Settings, srv, rss: RssTimeline, tag: str, pages: int) -> dict:
    """One `ingest` from scratch with the default embedder, in a fresh process of its own (as `caprl-index
    ingest` runs): its RSS is the pipeline's, not this script's. Wall time, counters, vLLM busy time."""
    ctx = get_context("spawn")
    out = ctx.SimpleQueue()
    requests_before, busy_before = len(srv.chat_requests), srv.stats()["busy_s"]
    rss.stage = f"{tag}:split"
    child = ctx.Process(target=_e2e_child, args=(files, settings, pages, out))
    child.start()
    rss.names[child.pid] = "parent"
    while True:
        msg = out.get()
        if msg[0] == "drain":
            rss.stage = f"{tag}:drain"
        else:
            break
    child.join()
    rss.stage = "idle"
    _, wall, stats = msg
    busy = srv.stats()["busy_s"] - busy_before
    return {"wall": wall, "stats": stats, "requests": len(srv.chat_requests) - requests_before, "busy": busy}


def _e2e_child(files: list[Path], settings: Settings, pages: int, out) -> None:
    reporter = StageReporter(pages, lambda: out.put(("drain",)))
    start = time.perf_counter()
    stats = ingest(files, settings, reporter=reporter)  # type: ignore[arg-type]
    out.put(("done", time.perf_counter() - start, stats))


def bench_reingest(n_files: int, embedder) -> None:
    """Re-ingest rate on many small unchanged files (the per-file overhead, not parsing)."""
    import pymupdf

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for i in range(n_files):
            doc = pymupdf.open()
            doc.new_page().insert_text((72, 72), f"Memo {i}: quarterly figures for unit {i % 37}.")
            doc.save(docs / f"memo-{i:05d}.pdf")
            doc.close()
        settings = Settings(qdrant_path=Path(tmp) / "qdrant", captioner="none")
        ingest([docs], settings, embedder=embedder)
        calls = embedder.calls
        start = time.perf_counter()
        stats = ingest([docs], settings, embedder=embedder)
        took = time.perf_counter() - start
    print(
        f"re-ingest of {n_files} unchanged small files: {took:.2f} s = {stats.files_skipped / took:.0f} files/s, "
        f"{embedder.calls - calls} embedding calls (target >= 200 files/s, 0 calls)"
    )


def main() -> None:
    args = parse_args()
    files = pick_files(args.corpus, args.max_pages)
    if not files:
        sys.exit(f"no PDFs under {args.corpus}")
    from caprl_index.embedding import open_embedder

    embedder = CountingEmbedder(open_embedder(Settings()))  # the default: ONNX Runtime for the packaged model
    embedder.embed(["warm up"])
    fake = FakeVLLM(latency_s=0.05, latency_per_token_s=args.ms_per_token / 1000, max_num_seqs=args.slots)
    with fake as srv, tempfile.TemporaryDirectory() as tmp, RssTimeline(args.interval) as rss:

        def settings(tag: str, **extra) -> Settings:
            options = {"captioner": "vllm", **extra}  # a variant may set its own captioner (`none`, `ocr`)
            return Settings(vllm_url=[srv.url], qdrant_path=Path(tmp) / tag / "qdrant", **options)

        if args.e2e_only:
            n_pages, n_fig, n_txt, split_s, cap_s, emb_s, store_s = page_count(files), 0, 0, 0.0, 0.0, 0.0, 0.0
        else:
            rss.stage = "split"
            split_s, pages = stage_split(files, settings("split"))
            rss.stage = "caption"
            cap_s, n_fig = stage_caption(pages, settings("cap"))
            rss.stage = "embed"
            emb_s, chunks, vectors = stage_embed(pages, embedder, settings("emb"))
            rss.stage = "store"
            store_s = stage_store(chunks, vectors, embedder.dim, settings("store"))
            n_pages, n_txt = len(pages), len(chunks)
            del pages, chunks, vectors  # the RSS measured below is the pipeline's, not this script's stage data
        runs = {"e2e": run_e2e(files, settings("e2e"), srv, rss, "e2e", n_pages)}
        if args.compare_ocr_in_workers:
            before = settings("e2e-before", ocr_process=False)
            runs["e2e-before"] = run_e2e(files, before, srv, rss, "e2e-before", n_pages)
        if args.compare_lean:  # one OCR engine on all cores
            args.variant.append("lean:ocr_engines=1")
        for name, extra in map(parse_variant, args.variant):
            runs[f"e2e-{name}"] = run_e2e(files, settings(f"e2e-{name}", **extra), srv, rss, f"e2e-{name}", n_pages)
        if args.embed_server:  # the GPU box embeds too: a loopback /v1/embeddings that costs these cores nothing
            with FakeEmbeddings() as emb:
                remote = settings("e2e-embed-server", embed_url=emb.url, embed_model="gpu-embedder")
                runs["e2e-embed-server"] = run_e2e(files, remote, srv, rss, "e2e-embed-server", n_pages)
        calls_before, requests_before = embedder.calls, len(srv.chat_requests)
        start = time.perf_counter()
        again = ingest(files, settings("e2e"), embedder=embedder)
        re_s = time.perf_counter() - start
        re_requests = len(srv.chat_requests) - requests_before
        re_embeds = embedder.calls - calls_before

    cores = os.cpu_count() or 1
    slowest = max(split_s, cap_s, emb_s)
    print(f"corpus: {len(files)} PDFs, {n_pages} pages, {n_fig} figures, {n_txt} chunks; "
          f"{cores} CPUs; simulated vLLM {args.slots} slots, {args.ms_per_token} ms/token; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    if not args.e2e_only:
        print(f"stage split      {split_s:8.1f} s  ({n_pages / split_s:.1f} pages/s, "
              f"{n_fig / split_s / cores:.2f} figures detected/s per core)")  # fmt: skip
        print(f"stage caption    {cap_s:8.1f} s  ({n_fig / cap_s:.1f} figures/s)")
        print(f"stage embed      {emb_s:8.1f} s  ({n_txt / emb_s:.1f} chunks/s)")
        print(f"stage store      {store_s:8.1f} s  ({n_txt / store_s:.1f} points/s)")
        print(f"sum of stages    {split_s + cap_s + emb_s:8.1f} s  (split + caption + embed)")
    peaks = rss.tree_peaks()
    for tag, run in runs.items():
        wall, stats = run["wall"], run["stats"]
        tree = max(v for k, v in peaks.items() if k.split(":")[0] == tag)
        print(f"{tag:<16} {wall:8.1f} s  ({stats.pages / wall:.1f} pages/s, {stats.figures / wall / cores:.2f} "
              f"figures/s per core, {run['requests']} caption requests, simulated vLLM utilisation "
              f"{run['busy'] / args.slots / wall:.3f}); peak RSS of the tree {tree / 2**20:.0f} MiB")  # fmt: skip
        if stats.failures:
            print("  failures:", *[f"    {f.path}: {f.reason}" for f in stats.failures], sep="\n")
    e2e_s = runs["e2e"]["wall"]
    if not args.e2e_only:
        print(f"ratio e2e / slowest stage: {e2e_s / slowest:.2f}  (target <= 1.10)")
        print(f"ratio e2e / sum of stages: {e2e_s / (split_s + cap_s + emb_s):.2f}  (1.00 = no overlap)")
    if "e2e-before" in runs:
        before = runs["e2e-before"]["wall"]
        print(f"ratio e2e (OCR process) / e2e-before (OCR in every worker): {e2e_s / before:.2f}  (target <= 1.05)")
    for name, extra in map(parse_variant, args.variant):
        print(f"ratio e2e-{name} ({extra}) / e2e: {runs[f'e2e-{name}']['wall'] / e2e_s:.2f}")
    if "e2e-embed-server" in runs:
        print(f"ratio e2e-embed-server (documents embedded by a server, not these cores) / e2e: "
              f"{runs['e2e-embed-server']['wall'] / e2e_s:.2f}")  # fmt: skip
    print(rss.report())
    print(f"(target: peak RSS of the tree <= 1536 MiB at 1,000 pages; this run: {n_pages} pages)")
    if args.rss_csv:
        rss.write_csv(args.rss_csv)
        print(f"RSS timeline: {args.rss_csv}")
    print(
        f"re-ingest unchanged: {re_s:.2f} s, {again.files_skipped / re_s:.0f} files/s, "
        f"{re_requests} caption requests, {re_embeds} embedding calls (target: 0 and 0, >= 200 files/s)"
    )
    if args.reingest_files:
        bench_reingest(args.reingest_files, embedder)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """ "name:key=value,key=value" -> (name, settings overrides)."""
    name, _, pairs = text.partition(":")
    return name, dict(pair.split("=", 1) for pair in pairs.split(",") if pair)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="*", type=Path, default=[DEFAULT_CORPUS])
    ap.add_argument("--max-pages", type=int, default=300)
    ap.add_argument("--slots", type=int, default=16, help="simulated vLLM --max-num-seqs")
    ap.add_argument("--ms-per-token", type=float, default=2.0, help="simulated decode time per output token")
    ap.add_argument("--reingest-files", type=int, default=500, help="small files for the re-ingest rate (0: skip)")
    ap.add_argument("--rss-csv", type=Path, help="write the RSS timeline (t, stage, pid, role, MiB) here")
    ap.add_argument("--interval", type=float, default=0.5, help="RSS sampling interval, seconds")
    ap.add_argument("--compare-ocr-in-workers", action="store_true",
                    help="run e2e again with an OCR engine in every worker (CAPRL_OCR_PROCESS=false)")  # fmt: skip
    ap.add_argument("--e2e-only", action="store_true", help="skip the stage-by-stage runs (long corpora)")
    ap.add_argument("--compare-lean", action="store_true",
                    help="run e2e again with CAPRL_OCR_ENGINES=1 (one OCR engine)")  # fmt: skip
    ap.add_argument("--embed-server", action="store_true",
                    help="run e2e again with documents embedded by a loopback /v1/embeddings server (an embedding "
                         "model on the GPU box; hashed-word vectors: for throughput, not retrieval)")  # fmt: skip
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                    help="run e2e again with these settings, e.g. torch:embed_backend=torch (repeatable)")  # fmt: skip
    return ap.parse_args()


if __name__ == "__main__":
    main()
