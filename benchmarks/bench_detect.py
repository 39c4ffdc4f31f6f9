"""Split + figure detection speed against two baselines, on the same pages in the same run.

    python benchmarks/bench_detect.py [--docs 8] [--per-doc 6] [--data ../shared/data/mmlongbench-dev/documents]

- ours: caprl_index.sources.prepare + parse_pages (text, blocks, figures rendered and encoded
  within the pixel budget, OCR of scans and of raster figures without a text layer);
- raw: PyMuPDF get_text("dict") + a render of the whole page at the DPI that fits the same pixel
  budget (and, separately, + PNG encoding of that render);
- pymupdf4llm.to_markdown with its layout model on (pymupdf.layout).

Pages are sampled evenly over the corpus's PDFs. Each of ours and raw is timed --repeat times,
interleaved, and the fastest run counts (the 2-core machines are noisy). Prints pages/s and the
ratios the budget names: ours >= pymupdf4llm, and ours within 1.5x of raw.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pymupdf

from caprl_index.config import Settings
from caprl_index.figures.crop import zoom_for
from caprl_index.sources import parse_pages, prepare
from caprl_index.sources.discover import source_file

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlongbench-dev" / "documents"


def sample(folder: Path, docs: int, per_doc: int) -> dict[Path, list[int]]:
    """`per_doc` pages spread over each of `docs` PDFs spread over the folder (sorted by name)."""
    files = sorted(folder.glob("*.pdf"))
    files = files[:: max(1, len(files) // docs)][:docs]
    chosen: dict[Path, list[int]] = {}
    for path in files:
        with pymupdf.open(path) as doc:
            step = max(1, doc.page_count // per_doc)
            chosen[path] = list(range(0, doc.page_count, step))[:per_doc]
    return chosen


def run_ours(pages: dict[Path, list[int]], settings: Settings) -> tuple[float, int]:
    start = time.perf_counter()
    figures = 0
    for path, numbers in pages.items():
        doc = prepare(source_file(path), settings, Path("/tmp"))
        for pno in numbers:
            figures += sum(len(p.figures) for p in parse_pages(doc, pno, pno + 1, settings))
    return time.perf_counter() - start, figures


def run_raw(pages: dict[Path, list[int]], settings: Settings, encode: bool) -> float:
    start = time.perf_counter()
    for path, numbers in pages.items():
        with pymupdf.open(path) as doc:
            for pno in numbers:
                page = doc[pno]
                page.get_text("dict")
                zoom = zoom_for(page.rect.width, page.rect.height, settings.max_pixels)
                pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom))
                if encode:
                    pix.tobytes("png")
    return time.perf_counter() - start


def run_pymupdf4llm(pages: dict[Path, list[int]]) -> float:
    import pymupdf4llm

    pymupdf4llm.use_layout(True)
    start = time.perf_counter()
    for path, numbers in pages.items():
        with pymupdf.open(path) as doc:
            try:
                pymupdf4llm.to_markdown(doc, pages=numbers)
            except TypeError:  # its rapidocr backend fails on pages where OCR finds nothing
                pymupdf4llm.to_markdown(doc, pages=numbers, use_ocr=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=8, help="PDFs to sample, spread over the folder")
    parser.add_argument("--per-doc", type=int, default=6, help="pages to sample per PDF")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of ours and raw; the fastest counts")
    parser.add_argument("--skip-pymupdf4llm", action="store_true")
    args = parser.parse_args()
    pages = sample(args.data, args.docs, args.per_doc)
    n = sum(len(v) for v in pages.values())
    settings = Settings()
    no_ocr = Settings(ocr=False)  # text layer only: detection alone
    run_ours({p: v[:1] for p, v in list(pages.items())[:2]}, settings)  # warm up imports and OCR models
    times: dict[str, list[float]] = {"ours": [], "no_ocr": [], "raw": [], "raw_png": []}
    figures = 0
    for _ in range(args.repeat):
        elapsed, figures = run_ours(pages, settings)
        times["ours"].append(elapsed)
        times["no_ocr"].append(run_ours(pages, no_ocr)[0])
        times["raw"].append(run_raw(pages, settings, encode=False))
        times["raw_png"].append(run_raw(pages, settings, encode=True))
    ours, ours_no_ocr, raw, raw_png = (min(times[k]) for k in ("ours", "no_ocr", "raw", "raw_png"))
    print(f"{n} pages from {len(pages)} PDFs; {figures} figures; fastest of {args.repeat} runs")
    print(f"ours (split + detect + crops): {n / ours:7.1f} pages/s  (OCR of scans and raster figures included)")
    print(
        f"ours without OCR:              {n / ours_no_ocr:7.1f} pages/s   ours/raw time ratio {ours_no_ocr / raw:.2f}x"
    )
    print(f"raw get_text + render:         {n / raw:7.1f} pages/s   ours/raw time ratio {ours / raw:.2f}x")
    print(f"raw get_text + render + PNG:   {n / raw_png:7.1f} pages/s   ours/raw+png time ratio {ours / raw_png:.2f}x")
    if not args.skip_pymupdf4llm:
        p4 = run_pymupdf4llm(pages)
        print(f"pymupdf4llm (layout on):       {n / p4:7.1f} pages/s   ours is {p4 / ours:.1f}x faster (with OCR)")


if __name__ == "__main__":
    main()
