"""OCR word boundaries: word precision/recall of OCR'd born-digital pages against their own text layer.

    python benchmarks/ocr_words.py [--data ../shared/data/mmlongbench-dev/documents] [--docs 12] [--per-doc 2]
                                   [--offset 3] [--rec-batch N]

Pages with a text layer (> 40 words) are rendered at the caption pixel budget (what a scan or a figure
crop gets), OCR'd once, and their tokens compared with the text layer's as bags of words:

- before: the recogniser's lines as rapidocr returns them (spaces dropped in most Latin runs);
- after: the same lines with word boundaries restored (`caprl_index.sources.ocr_words`), which is
  what `ocr_image` returns.

Tokens are what the BM25 side indexes (lower-cased runs of letters and digits), so a token that is
right here is one a query can match. precision = matched / OCR tokens, recall = matched / text-layer
tokens. The segmenter's weights were tuned on the pages of `--offset 1`; the default offset 3 samples
other documents.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path

import pymupdf

from caprl_index.figures.crop import pixmap_to_pil, render_region
from caprl_index.sources.ocr import OcrLine, raw_lines
from caprl_index.sources.ocr_words import restore_spaces

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlongbench-dev" / "documents"
MAX_PIXELS = 1_003_520
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.lower()))


def sample(folder: Path, docs: int, per_doc: int, offset: int) -> list[tuple[Path, int]]:
    """`per_doc` text pages of each of `docs` PDFs spread over the folder."""
    files = sorted(folder.glob("*.pdf"))
    files = files[offset :: max(1, len(files) // docs)][:docs]
    chosen = []
    for path in files:
        with pymupdf.open(path) as doc:
            pages = [p for p in range(doc.page_count) if len(doc[p].get_text("words")) > 40]
        step = max(1, len(pages) // per_doc)
        chosen += [(path, p) for p in pages[step // 2 :: step][:per_doc]]
    return chosen


def after_text(lines: list[OcrLine]) -> str:
    return " ".join(restore_spaces(ln.text, ln.centres or None, ln.bbox[3] - ln.bbox[1]) for ln in lines)


def score(found: Counter[str], truth: Counter[str]) -> tuple[int, int, int]:
    return sum((found & truth).values()), sum(found.values()), sum(truth.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--per-doc", type=int, default=2)
    parser.add_argument("--offset", type=int, default=3, help="first PDF (sorted by name) of the sample")
    parser.add_argument("--rec-batch", type=int, help="text lines per recognition pass (default: ocr.REC_BATCH)")
    args = parser.parse_args()
    if args.rec_batch:
        from caprl_index.sources import ocr

        ocr.REC_BATCH = args.rec_batch
    pages = sample(args.data, args.docs, args.per_doc, args.offset)
    totals = {"before": [0, 0, 0], "after": [0, 0, 0]}
    start = time.perf_counter()
    for path, pno in pages:
        with pymupdf.open(path) as doc:
            page = doc[pno]
            truth = tokens(page.get_text("text"))
            rect = page.rect
            image = pixmap_to_pil(render_region(page, (rect.x0, rect.y0, rect.x1, rect.y1), MAX_PIXELS))
        lines = raw_lines(image)
        for name, text in (("before", " ".join(ln.text for ln in lines)), ("after", after_text(lines))):
            for i, value in enumerate(score(tokens(text), truth)):
                totals[name][i] += value
    elapsed = time.perf_counter() - start
    print(f"{len(pages)} pages from {len({p for p, _ in pages})} PDFs (offset {args.offset}), {elapsed:.0f} s")
    for name, (hit, found, truth_n) in totals.items():
        p, r = hit / max(found, 1), hit / max(truth_n, 1)
        print(f"{name:<7} word precision {p:.3f}  recall {r:.3f}  F1 {2 * p * r / max(p + r, 1e-9):.3f}")
    probe = "PAYMENTSLANDSCAPE Withtheincreasingdigitalpaymentspenetration,theshareof oftrainsontime 27%ofolder"
    print(f"dictionary only: {probe!r} -> {restore_spaces(probe)!r}")


if __name__ == "__main__":
    main()
