"""Figure-detection recall on MMLongBench-Doc evidence regions, and false figures on 10-K text pages.

    python benchmarks/figure_recall.py [--data ../shared/data/mmlongbench-dev] [--tenk-pages 120] [-v]

Recall: an evidence box (MMDocIR, PDF points) counts as found when >= 50% of its area lies inside
one region that parse_pages indexes on that page (a detected figure, or the whole page for scans).
False figures: figures detected per page on 10-K pages that show no picture at all (pure text and
tables); a 10-K's few real vector charts (stock performance graphs) count against us too, so this
is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pymupdf

from caprl_index.config import Settings
from caprl_index.figures import geometry as g
from caprl_index.sources import prepare
from caprl_index.sources.discover import source_file
from caprl_index.sources.pdf import page_regions

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlongbench-dev"


def _scaled(box: list[float], size: list[float], page: pymupdf.Page) -> tuple[float, ...]:
    sx, sy = page.rect.width / size[0], page.rect.height / size[1]
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def recall(data: Path, settings: Settings, verbose: bool) -> tuple[int, int, int, int, int]:
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines() if line.strip()]
    prepared: dict[str, object] = {}
    found_boxes = total_boxes = found_queries = total_queries = any_queries = 0
    for q in queries:
        boxes = q.get("mmdocir_evidence_bboxes") or []
        if not boxes:
            continue
        path = data / q["file"]
        if q["file"] not in prepared:
            prepared[q["file"]] = prepare(source_file(path), settings, Path("/tmp"))
        doc = prepared[q["file"]]
        pno = q["page"] - 1
        with pymupdf.open(path) as pdf:
            page = pdf[pno]
            regions = page_regions(page, pno, doc, settings)  # type: ignore[arg-type]
            hits = []
            for box in boxes:
                ev = _scaled(box["bbox_xyxy_pt"], box["page_size_pt"], page)
                best = max((g.intersection(ev, r) / max(g.area(ev), 1) for _, r in regions), default=0.0)
                hits.append(best >= 0.5)
        found_boxes += sum(hits)
        total_boxes += len(hits)
        total_queries += 1
        found_queries += all(hits)
        any_queries += any(hits)
        if verbose and not all(hits):
            shown = [(k, [round(v) for v in r]) for k, r in regions]
            ev_boxes = [b["bbox_xyxy_pt"] for b in boxes]
            print(f"  MISS {q['qid']} {q['file']} p{q['page']} evidence={ev_boxes} regions={shown}")
    return found_boxes, total_boxes, found_queries, total_queries, any_queries


def caption_pages(captions: Path, settings: Settings, verbose: bool) -> tuple[int, int, int]:
    """Pages of the Debian manuals that carry an author-captioned figure: is a figure found there,
    and does one found figure's printed caption hold the caption's first words?"""
    from caprl_index.sources import parse_pages

    items = [json.loads(line) for line in captions.read_text().splitlines() if line.strip()]
    prepared: dict[str, object] = {}
    hit = named = 0
    for item in items:
        path = captions.parent / item["file"]
        if item["file"] not in prepared:
            prepared[item["file"]] = prepare(source_file(path), settings, Path("/tmp"))
        pno = item["page"] - 1
        parsed = parse_pages(prepared[item["file"]], pno, pno + 1, settings)[0]  # type: ignore[arg-type]
        want = " ".join(item["caption"].split()[:4]).lower()
        hit += bool(parsed.figures)
        named += any(want in " ".join(f.printed_caption.split()).lower() for f in parsed.figures)
        if verbose and not parsed.figures:
            print(f"  NOFIG {item['file']} p{item['page']}: {item['caption'][:60]}")
    return hit, len(items), named


def false_figures(data: Path, settings: Settings, max_pages: int, verbose: bool) -> tuple[int, int]:
    figures = pages = 0
    for path in sorted((data / "documents").glob("*10K*.pdf")):
        doc = prepare(source_file(path), settings, Path("/tmp"))
        with pymupdf.open(path) as pdf:
            for pno in range(0, pdf.page_count, max(1, pdf.page_count // (max_pages // 6 or 1))):
                page = pdf[pno]
                if page.get_image_info():
                    continue  # shows a picture: not a text-only page
                regions = page_regions(page, pno, doc, settings)  # type: ignore[arg-type]
                pages += 1
                figures += len(regions)
                if verbose and regions:
                    print(f"  FIG {path.name} p{pno + 1}: {[[round(v) for v in r] for _, r in regions]}")
    return figures, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tenk-pages", type=int, default=180, help="about this many 10-K pages to sample")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if not (args.data / "queries.jsonl").exists():
        raise SystemExit(f"{args.data}/queries.jsonl not found: pass --data")
    settings = Settings()
    start = time.perf_counter()
    fb, tb, fq, tq, aq = recall(args.data, settings, args.verbose)
    print(f"evidence boxes covered: {fb}/{tb} = {fb / tb:.3f}")
    print(f"queries, all evidence boxes covered: {fq}/{tq} = {fq / tq:.3f}; any box covered: {aq}/{tq} = {aq / tq:.3f}")
    captions = args.data.parent / "debian" / "figure_captions.jsonl"
    if captions.exists():
        hit, total, named = caption_pages(captions, settings, args.verbose)
        print(
            f"debian pages with an author figure caption: figure found on {hit}/{total} = {hit / total:.3f}; "
            f"its printed caption matched on {named}/{total} = {named / total:.3f}"
        )
    figs, pages = false_figures(args.data, settings, args.tenk_pages, args.verbose)
    print(f"10-K text-only pages: {figs} figures on {pages} pages = {figs / max(pages, 1):.3f} per page")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
