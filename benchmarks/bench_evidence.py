"""The cost of keeping evidence images: ingest time with and without them, and bytes per page, in one run.

    python benchmarks/bench_evidence.py [--docs 61] [--data ../shared/data/mmlongbench-dev/documents]

Ingests the same PDFs twice from scratch with the real CLI (`--captioner auto` with no vLLM: figures get
OCR text), once with `CAPRL_KEEP_IMAGES=false` and once with images kept, alternating which goes first, and
prints wall times, their ratio, and the image bytes per page (page renders, thumbnails and crops apart).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlongbench-dev" / "documents"


def corpus(data: Path, docs: int, into: Path) -> tuple[Path, int]:
    """`docs` PDFs spread over the folder, linked into `into`; their total page count."""
    import pymupdf

    files = sorted(data.glob("*.pdf"))
    files = files[:: max(1, len(files) // docs)][:docs]
    into.mkdir(parents=True)
    pages = 0
    for f in files:
        (into / f.name).symlink_to(f)
        with pymupdf.open(f) as doc:
            pages += doc.page_count
    return into, pages


def ingest(docs: Path, root: Path, keep: bool) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CAPRL_KEEP_IMAGES": str(keep).lower(), "CAPRL_CAPTIONER": "auto"}
    env["CAPRL_VLLM_URL"] = "http://127.0.0.1:9/v1"  # nothing listens: OCR text, as without a GPU
    cmd = [sys.executable, "-m", "caprl_index.cli", "ingest", str(docs), "--qdrant-path", str(root / "qdrant")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall


def sizes(images: Path) -> dict[str, int]:
    out = {"page renders": 0, "thumbnails": 0, "crops": 0}
    for p in images.rglob("*"):
        if p.is_file():
            kind = "crops" if "crops" in p.parts else "thumbnails" if p.name.endswith(".thumb.webp") else "page renders"
            out[kind] += p.stat().st_size
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--docs", type=int, default=61)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caprl-bench-evidence-"))
    try:
        docs, pages = corpus(args.data, args.docs, work / "docs")
        walls: dict[bool, float] = {}
        for keep in (False, True) if args.docs % 2 else (True, False):
            walls[keep] = ingest(docs, work / f"keep-{keep}", keep)
            print(f"images {'kept' if keep else 'off '}: {walls[keep]:7.1f} s for {pages} pages", flush=True)
        kept = sizes(work / "keep-True" / "images")
        total = sum(kept.values())
        print(f"ingest time with images / without: {walls[True] / walls[False]:.3f}")
        print(f"image bytes per page: {total / pages / 1024:.1f} KiB in all")
        for kind, n in kept.items():
            print(f"  {kind:>12}: {n / pages / 1024:6.1f} KiB per page ({n / 1_048_576:.1f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
