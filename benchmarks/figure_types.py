"""figure_type accuracy on a labelled set of real figures, per type.

    python benchmarks/figure_types.py [--data ../shared/data] [--labels benchmarks/data/figure_types.jsonl] [-v]

`benchmarks/data/figure_types.jsonl` holds one line per figure: `file` (relative to --data), `page`
(1-based), `bbox` (the figure's box as `parse_pages` gave it, PDF points) and `type`, labelled by eye
from the crops (definitions in docs/figure-types.md). Each page is parsed as an ingest would (OCR on),
the detected figure that overlaps the label's box most is taken, and its figure_type compared.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from caprl_index.config import Settings
from caprl_index.figures import geometry as g
from caprl_index.sources import parse_pages, prepare
from caprl_index.sources.discover import source_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_LABELS = ROOT / "benchmarks" / "data" / "figure_types.jsonl"


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter = g.intersection(a, b)  # type: ignore[arg-type]
    return inter / max(g.area(a) + g.area(b) - inter, 1e-6)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every miss")
    args = parser.parse_args()
    items = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    settings = Settings()
    prepared: dict[str, object] = {}
    parsed: dict[tuple[str, int], list] = {}
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    start = time.perf_counter()
    for item in items:
        key = (item["file"], item["page"])
        if key not in parsed:
            if item["file"] not in prepared:
                prepared[item["file"]] = prepare(source_file(args.data / item["file"]), settings, Path("/tmp"))
            pno = item["page"] - 1
            parsed[key] = list(parse_pages(prepared[item["file"]], pno, pno + 1, settings)[0].figures)  # type: ignore[arg-type]
        figures = [f for f in parsed[key] if f.kind == "figure" and f.bbox]
        best = max(figures, key=lambda f: iou(f.bbox, tuple(item["bbox"])), default=None)
        got = best.figure_type if best is not None and iou(best.bbox, tuple(item["bbox"])) > 0.3 else "(not found)"
        total[item["type"]] += 1
        right[item["type"]] += got == item["type"]
        confusion[(item["type"], got)] += 1
        if args.verbose and got != item["type"]:
            print(f"  MISS {item['file']} p{item['page']} {item['bbox']}: {item['type']} -> {got}")
    n = sum(total.values())
    print(f"{n} labelled figures on {len(parsed)} pages ({time.perf_counter() - start:.0f} s)")
    for kind in sorted(total):
        print(f"  {kind:<12} {right[kind]:>3}/{total[kind]:<3} = {right[kind] / total[kind]:.3f}")
    print(f"  {'overall':<12} {sum(right.values()):>3}/{n:<3} = {sum(right.values()) / n:.3f}")
    misses = (f"{a}->{b} {c}" for (a, b), c in confusion.most_common() if a != b)
    print("confusions (label -> predicted):", ", ".join(misses))


if __name__ == "__main__":
    main()
