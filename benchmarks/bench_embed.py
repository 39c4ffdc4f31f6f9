"""Document embedding benchmark: sentence-transformers (torch) against ONNX Runtime and the NumPy encoder, in one run.

The texts are real chunks: page text of the shared corpus's PDFs (PyMuPDF), cut by the project's chunker
with the model's tokenizer, as ingest does, until `--chunks` are collected. Each backend runs in a fresh
subprocess (so its imports count in its memory), embeds every text in batches of `embed_batch_size` after
one warm-up batch, and writes its vectors; rounds alternate the backends (A B A B ...) so that a load
change on a shared machine hits all. Reported per backend: documents/s (best and median of the rounds),
load seconds (imports + model), peak RSS; then each backend's ratio to torch and the minimum cosine between
its vector of each text and torch's (must be >= 0.9999).

    nice -n 10 python benchmarks/bench_embed.py [--chunks 1200] [--rounds 3] [--docs DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOCS = Path("/work/shared/data/mmlongbench-dev/documents")
BACKENDS = ("torch", "onnx", "numpy")


def collect_texts(docs: Path, limit: int) -> list[str]:
    """Chunk texts of the PDFs under `docs`, sorted by name, a few pages of each, until `limit`."""
    import pymupdf

    from caprl_index.chunking import Chunker
    from caprl_index.embedding.query import NumpyBertEncoder
    from caprl_index.embedding.sentence import DEFAULT_MODEL, resolve_model
    from caprl_index.models import Page, ParsedPage, SourceFile

    encoder = NumpyBertEncoder(Path(resolve_model(DEFAULT_MODEL)), DEFAULT_MODEL)
    chunker = Chunker(window=encoder.max_tokens, tokenizer=encoder.tokenizer())
    texts: list[str] = []
    for path in sorted(docs.rglob("*.pdf")):
        file = SourceFile(str(path), "0", 0)
        with pymupdf.open(path) as doc:
            for number, page in enumerate(doc.pages(0, min(20, doc.page_count)), 1):
                parsed = ParsedPage(Page(number, page.rect.width, page.rect.height, page.get_text()))
                texts.extend(c.text for c in chunker.text_chunks(file, doc.page_count, parsed))
        if len(texts) >= limit:
            return texts[:limit]
    return texts


def run_backend(backend: str, texts_path: Path, out: Path, batch: int) -> dict[str, Any]:
    """In a fresh process: load the backend, warm up on one batch, embed all texts, save the vectors."""
    import numpy as np

    texts = json.loads(texts_path.read_text())
    start = time.perf_counter()
    from caprl_index.config import Settings
    from caprl_index.embedding import open_embedder

    settings = Settings(embed_backend=backend, embed_batch_size=batch)
    embedder = open_embedder(settings)
    embedder.embed(texts[:batch])  # loads the model and warms up
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    vectors = [v for i in range(0, len(texts), batch) for v in embedder.embed(texts[i : i + batch])]
    seconds = time.perf_counter() - start
    np.save(out, np.asarray(vectors, dtype=np.float32))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch_loaded = "torch" in sys.modules
    return {"docs_s": len(texts) / seconds, "load_s": loaded, "rss_mb": rss_mb, "torch": torch_loaded}


def child(backend: str, texts_path: Path, out: Path, batch: int, threads: int | None) -> dict[str, Any]:
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    cmd = [sys.executable, __file__, "--child", backend, str(texts_path), str(out), str(batch)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, backend, texts, out, batch = sys.argv
        print(json.dumps(run_backend(backend, Path(texts), Path(out), int(batch))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads of each backend")
    args = parser.parse_args()

    import numpy as np

    texts = collect_texts(args.docs, args.chunks)
    lengths = sorted(len(t) for t in texts)
    print(
        f"{len(texts)} chunks, characters p10/p50/p90 {lengths[len(lengths) // 10]}/{lengths[len(lengths) // 2]}/"
        f"{lengths[len(lengths) * 9 // 10]}; load average {os.getloadavg()}"
    )
    results: dict[str, list[dict[str, Any]]] = {b: [] for b in BACKENDS}
    with tempfile.TemporaryDirectory() as tmp:
        texts_path = Path(tmp) / "texts.json"
        texts_path.write_text(json.dumps(texts))
        for r in range(args.rounds):
            for backend in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
                result = child(backend, texts_path, Path(tmp) / f"{backend}.npy", args.batch, args.threads)
                results[backend].append(result)
                print(
                    f"round {r + 1} {backend:6} {result['docs_s']:7.1f} docs/s  load {result['load_s']:.2f} s  "
                    f"peak RSS {result['rss_mb']:.0f} MB  torch imported: {result['torch']}",
                    flush=True,
                )
        vectors = {name: np.load(Path(tmp) / f"{name}.npy") for name in BACKENDS}
    best = {k: max(r["docs_s"] for r in v) for k, v in results.items()}
    median = {k: statistics.median(r["docs_s"] for r in v) for k, v in results.items()}
    for k in BACKENDS:
        rss = max(r["rss_mb"] for r in results[k])
        load = statistics.median(r["load_s"] for r in results[k])
        print(f"{k:6} best {best[k]:7.1f}  median {median[k]:7.1f} docs/s  load {load:.2f} s  peak RSS {rss:.0f} MB")
    a = vectors["torch"]
    for k in BACKENDS[1:]:
        b = vectors[k]
        cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        print(
            f"ratio {k}/torch: best {best[k] / best['torch']:.3f}  median {median[k] / median['torch']:.3f}  "
            f"min cosine {cosines.min():.8f} (1 - min = {1 - cosines.min():.1e})"
        )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
