"""Would PyMuPDF's layout model (`pymupdf.layout`) find evidence regions our detector misses?

    python benchmarks/layout_model_recall.py [--data ../shared/data/mmlongbench-dev] [-v]

Same criterion as figure_recall.py (>= 50% of an evidence box inside one region), on the same pages:
our detector's regions, the layout model's `picture` and `table` boxes, and their union; plus the layout
model's time per page. Missed boxes are listed with the layout class that covers them best (-v).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from caprl_index.config import Settings
from caprl_index.figures import geometry as g
from caprl_index.sources import prepare
from caprl_index.sources.discover import source_file
from caprl_index.sources.pdf import page_regions

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlongbench-dev"
FIGURE_CLASSES = ("picture", "table")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    import pymupdf.layout

    settings = Settings()
    queries = [json.loads(x) for x in (args.data / "queries.jsonl").read_text().splitlines() if x.strip()]
    prepared: dict[str, object] = {}
    total = ours = model = union = 0
    layout_s = 0.0
    pages = 0
    for q in queries:
        boxes = q.get("mmdocir_evidence_bboxes") or []
        if not boxes:
            continue
        path = args.data / q["file"]
        if q["file"] not in prepared:
            prepared[q["file"]] = prepare(source_file(path), settings, Path("/tmp"))
        with pymupdf.open(path) as pdf:
            page = pdf[q["page"] - 1]
            regions = [r for _, r in page_regions(page, q["page"] - 1, prepared[q["file"]], settings)]  # type: ignore[arg-type]
            start = time.perf_counter()
            page.get_layout()
            layout_s += time.perf_counter() - start
            pages += 1
            by_class: dict[str, list[tuple[float, ...]]] = {}
            for x0, y0, x1, y1, cls in page.layout_information or []:
                by_class.setdefault(cls, []).append((x0, y0, x1, y1))
            for box in boxes:
                sx = page.rect.width / box["page_size_pt"][0]
                sy = page.rect.height / box["page_size_pt"][1]
                b = box["bbox_xyxy_pt"]
                ev = (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)

                def cover(rects: list, ev: tuple = ev) -> float:
                    return max((g.intersection(ev, r) / max(g.area(ev), 1.0) for r in rects), default=0.0)

                a = cover(regions) >= 0.5
                m = cover([r for c in FIGURE_CLASSES for r in by_class.get(c, [])]) >= 0.5
                total, ours, model, union = total + 1, ours + a, model + m, union + (a or m)
                if args.verbose and not a:
                    best = {c: round(cover(rs), 2) for c, rs in by_class.items()}
                    print(f"missed {q['qid']} {q['evidence_sources']} layout classes covering it: {best}")
    print(f"evidence boxes: {total}")
    print(f"  our detector             {ours:3d}  ({ours / total:.3f})")
    print(f"  layout picture+table     {model:3d}  ({model / total:.3f})")
    print(f"  union                    {union:3d}  ({union / total:.3f})")
    print(f"layout model: {layout_s / max(pages, 1):.2f} s/page over {pages} pages")


if __name__ == "__main__":
    main()
