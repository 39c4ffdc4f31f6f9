"""End-to-end benchmark: are the stages overlapped, is memory flat, is an unchanged re-ingest free?

Measures, in one run and on the same files (default: ../shared/data/pdf, about 300 pages):
  split   prepare + parse_pages of every page on the worker pool (figure detection and crops included)
  caption every figure against the simulated vLLM (FakeVLLM: latency per output token, fixed slots)
  embed   every chunk text with the configured embedder
  e2e     `ingest` from scratch (fresh index and caption cache) — target <= 1.1 x the slowest stage
  reingest the same `ingest` again — target: zero caption and embedding calls, >= 200 files/s
and the peak RSS of the process tree during e2e (target on 1,000 pages: <= 1.5 GB).

    python benchmarks/bench_pipeline.py [--corpus DIR ...] [--max-pages N] [--slots 16] [--ms-per-token 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caprl_index.config import Settings  # noqa: E402
from caprl_index.pipeline import ingest  # noqa: E402
from caprl_index.sources.discover import iter_paths, source_file  # noqa: E402
from caprl_index.testing.fake_vllm import FakeVLLM  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "pdf"


class PeakRSS:
    """Samples the RSS of this process and its children every 50 ms."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = self.proc.memory_info().rss
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(Exception):  # a worker may exit between listing and reading
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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
    from caprl_index.sources import parse_pages, prepare

    start = time.perf_counter()
    parsed = []
    with ProcessPoolExecutor(settings.worker_count, mp_context=get_context("spawn")) as pool, \
            tempfile.TemporaryDirectory() as work:  # fmt: skip
        preps = [pool.submit(prepare, source_file(f), settings, Path(work)) for f in files]
        futures = []
        for fut in preps:
            doc = fut.result()
            futures += [pool.submit(parse_pages, doc, s, min(s + 8, doc.page_count), settings)
                        for s in range(0, doc.page_count, 8)]  # fmt: skip
        for fut in futures:
            parsed.extend(fut.result())
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


def stage_embed(pages: list, embedder, settings: Settings) -> tuple[float, int]:
    from caprl_index.chunking import Chunker
    from caprl_index.models import Caption, SourceFile

    chunker = Chunker(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                      window=embedder.max_tokens, tokenizer=embedder.tokenizer())  # fmt: skip
    src = SourceFile(path="/bench.pdf", sha256="0" * 64, size=0)
    texts = []
    for p in pages:
        caps = [Caption(text="x " * 600, source="vllm") for _ in p.figures]  # caption-sized figure text
        texts += [c.text for c in chunker.page_chunks(src, 1, p, caps)]
    start = time.perf_counter()
    for i in range(0, len(texts), 64):
        embedder.embed(texts[i : i + 64])
    return time.perf_counter() - start, len(texts)


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="*", type=Path, default=[DEFAULT_CORPUS])
    ap.add_argument("--max-pages", type=int, default=300)
    ap.add_argument("--slots", type=int, default=16, help="simulated vLLM --max-num-seqs")
    ap.add_argument("--ms-per-token", type=float, default=2.0, help="simulated decode time per output token")
    ap.add_argument("--reingest-files", type=int, default=500, help="small files for the re-ingest rate (0: skip)")
    args = ap.parse_args()

    files = pick_files(args.corpus, args.max_pages)
    if not files:
        sys.exit(f"no PDFs under {args.corpus}")
    from caprl_index.embedding.sentence import SentenceTransformerEmbedder

    embedder = CountingEmbedder(SentenceTransformerEmbedder())
    embedder.embed(["warm up"])
    with FakeVLLM(latency_s=0.05, latency_per_token_s=args.ms_per_token / 1000, max_num_seqs=args.slots) as srv, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip

        def settings(tag: str) -> Settings:
            return Settings(vllm_url=[srv.url], qdrant_path=Path(tmp) / tag / "qdrant", captioner="vllm")

        split_s, pages = stage_split(files, settings("split"))
        cap_s, n_fig = stage_caption(pages, settings("cap"))
        emb_s, n_txt = stage_embed(pages, embedder, settings("emb"))
        n_pages = len(pages)
        del pages  # the RSS measured below is the pipeline's, not this script's stage data
        gc.collect()
        requests_before = len(srv.chat_requests)
        with PeakRSS() as rss:
            start = time.perf_counter()
            stats = ingest(files, settings("e2e"), embedder=embedder)
            e2e_s = time.perf_counter() - start
        requests_e2e = len(srv.chat_requests) - requests_before
        calls_before = embedder.calls
        start = time.perf_counter()
        again = ingest(files, settings("e2e"), embedder=embedder)
        re_s = time.perf_counter() - start
        re_requests = len(srv.chat_requests) - requests_before - requests_e2e
        re_embeds = embedder.calls - calls_before

    slowest = max(split_s, cap_s, emb_s)
    print(f"corpus: {len(files)} PDFs, {n_pages} pages, {n_fig} figures, {n_txt} chunks; "
          f"{os.cpu_count()} CPUs; simulated vLLM {args.slots} slots, {args.ms_per_token} ms/token")  # fmt: skip
    print(f"stage split      {split_s:8.1f} s  ({n_pages / split_s:.1f} pages/s)")
    print(f"stage caption    {cap_s:8.1f} s  ({n_fig / cap_s:.1f} figures/s)")
    print(f"stage embed      {emb_s:8.1f} s  ({n_txt / emb_s:.1f} chunks/s)")
    print(f"sum of stages    {split_s + cap_s + emb_s:8.1f} s")
    print(f"end to end       {e2e_s:8.1f} s  ({stats.pages / e2e_s:.1f} pages/s, {requests_e2e} caption requests)")
    print(f"ratio e2e / slowest stage: {e2e_s / slowest:.2f}  (target <= 1.10)")
    print(f"ratio e2e / sum of stages: {e2e_s / (split_s + cap_s + emb_s):.2f}  (1.00 = no overlap)")
    print(f"peak RSS during e2e: {rss.peak / 2**20:.0f} MiB for {n_pages} pages (target <= 1536 MiB at 1,000 pages)")
    print(
        f"re-ingest unchanged: {re_s:.2f} s, {again.files_skipped / re_s:.0f} files/s, "
        f"{re_requests} caption requests, {re_embeds} embedding calls (target: 0 and 0, >= 200 files/s)"
    )
    if stats.failures:
        print("failures:", *[f"  {f.path}: {f.reason}" for f in stats.failures], sep="\n")
    if args.reingest_files:
        bench_reingest(args.reingest_files, embedder)


if __name__ == "__main__":
    main()
