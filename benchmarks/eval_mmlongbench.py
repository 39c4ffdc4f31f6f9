"""Page-level retrieval on the MMLongBench-Doc dev set: the default pipeline against the text-only baseline.

    python benchmarks/eval_mmlongbench.py [--root /tmp/caprl-mmlb] [--data ../shared/data/mmlongbench-dev]
                                          [--force] [--skip-ingest] [--per-query] [--json]

Both pipelines ingest the same 61 PDFs in one run, each into its own embedded store under --root
(`text`: `--no-figures`; `default`: figures indexed with whatever the configured captioner gives — OCR and
text-layer text when no vLLM answers). Ingest is incremental: a store that already holds every file with
the same settings is reused (seconds), so re-running only re-evaluates. Ingest runs the real CLI in a
subprocess; its wall time and the peak RSS of its process tree (parent + parser workers) are reported.

Prints n, recall@1/5/10 and MRR of each pipeline on three query sets: all; without questions that point
at a page number ("on page 6", which retrieval cannot use); and of those, the ones whose answer is not in
the page's text layer (answer only in a figure's pixels).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from caprl_index.config import Settings
from caprl_index.evaluate import CUTOFFS, Query, evaluate, load_queries
from caprl_index.search import Searcher

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlongbench-dev"
PIPELINES: dict[str, list[str]] = {"text": ["--no-figures"], "default": []}

Row = dict[str, Any]


def settings_for(root: Path, name: str) -> Settings:
    return Settings(qdrant_path=root / name, collection=f"mmlb_{name}", figures=name != "text")


def ingest(data: Path, root: Path, name: str, force: bool) -> dict[str, float]:
    """Run `caprl-index ingest` for one pipeline; returns wall seconds and peak tree RSS in MiB."""
    s = settings_for(root, name)
    cmd = [sys.executable, "-m", "caprl_index.cli", "ingest", str(data / "documents")]
    cmd += ["--qdrant-path", str(s.qdrant_path), "--collection", s.collection, *PIPELINES[name]]
    cmd += ["--force"] if force else []
    log = root / f"ingest-{name}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = _watch_rss(proc)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ingest {name} failed (exit {proc.returncode}); see {log}")
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak / 2**20)}


def _watch_rss(proc: subprocess.Popen) -> int:
    """Sample the summed RSS of the process and its children until it exits; returns the peak (bytes)."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            done.wait(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    proc.wait()
    done.set()
    thread.join()
    return peak


def query_sets(rows: list[Row]) -> dict[str, Callable[[Row], bool]]:
    return {
        "all": lambda r: True,
        "no-positional": lambda r: r.get("positional_reference_in_question") is not True,
        "figure-only": lambda r: (
            r.get("positional_reference_in_question") is not True and r.get("answer_string_in_page_text_layer") is False
        ),
    }


def metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks)
    out: dict[str, float] = {"n": n}
    for cut in CUTOFFS:
        out[f"recall@{cut}"] = round(sum(1 for r in ranks if r and r <= cut) / n, 4) if n else 0.0
    out["mrr"] = round(sum(1.0 / r for r in ranks if r) / n, 4) if n else 0.0
    return out


def run_eval(root: Path, name: str, queries: list[Query], rows: list[Row]) -> dict[str, Any]:
    searcher = Searcher(settings_for(root, name))
    try:
        start = time.perf_counter()
        ranks = evaluate(searcher, queries)["ranks"]
        per_query_s = (time.perf_counter() - start) / max(len(queries), 1)
    finally:
        searcher.close()
    sets = {
        label: metrics([r for r, row in zip(ranks, rows, strict=True) if keep(row)])
        for label, keep in query_sets(rows).items()
    }
    return {"sets": sets, "ranks": ranks, "search_ms": round(per_query_s * 1000)}


def indexed_queries(
    root: Path, names: Sequence[str], rows: list[Row], queries: list[Query]
) -> tuple[list[Row], list[Query]]:
    """The questions whose file is fully indexed in every store."""
    from caprl_index.store import QdrantStore

    held: set[str] | None = None
    for name in names:
        store = QdrantStore(settings_for(root, name))
        try:
            files = {path for path, rec in store.records().items() if rec.complete}
        finally:
            store.close()
        held = files if held is None else held & files
    keep = [i for i, q in enumerate(queries) if q.file in (held or set())]
    print(f"--indexed-only: {len(held or ())} files indexed, {len(keep)} of {len(queries)} questions", file=sys.stderr)
    return [rows[i] for i in keep], [queries[i] for i in keep]


def print_table(results: dict[str, dict[str, Any]]) -> None:
    cols = ["n", *(f"recall@{c}" for c in CUTOFFS), "mrr"]
    print(f"{'query set':<14} {'pipeline':<9} " + " ".join(f"{c:>9}" for c in cols))
    for label in next(iter(results.values()))["sets"]:
        for name, res in results.items():
            m = res["sets"][label]
            cells = [f"{m['n']:>9}"] + [f"{m[c]:>9.3f}" for c in cols[1:]]
            print(f"{label:<14} {name:<9} " + " ".join(cells))


def print_per_query(results: dict[str, dict[str, Any]], rows: list[Row]) -> None:
    names = list(results)
    print("\nqid        " + " ".join(f"{n:>8}" for n in names) + "  question")
    for i, row in enumerate(rows):
        ranks = [results[n]["ranks"][i] for n in names]
        cells = " ".join(f"{r if r else '-':>8}" for r in ranks)
        print(f"{row.get('qid', i):<10} {cells}  {row['question'][:70]}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with queries.jsonl and documents/")
    ap.add_argument("--root", type=Path, default=Path("/tmp/caprl-mmlb"), help="stores go here, one per pipeline")
    ap.add_argument("--pipelines", default="text,default", help="comma-separated: text, default")
    ap.add_argument("--force", action="store_true", help="re-ingest every file")
    ap.add_argument("--skip-ingest", action="store_true", help="evaluate the stores as they are")
    ap.add_argument("--per-query", action="store_true", help="print the gold page's rank per question")
    ap.add_argument(
        "--indexed-only",
        action="store_true",
        help="keep only questions whose file every store holds (a partial corpus, e.g. with --skip-ingest)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    qfile = args.data / "queries.jsonl"
    if not qfile.is_file():
        raise SystemExit(f"{qfile}: not found; pass --data (the mmlongbench-dev folder of the shared data)")
    args.root.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in qfile.read_text().splitlines() if line.strip()]
    queries = load_queries(qfile)
    names = args.pipelines.split(",")
    if unknown := set(names) - set(PIPELINES):
        raise SystemExit(f"unknown pipeline {sorted(unknown)}; choose from {', '.join(PIPELINES)}")
    ingested = {} if args.skip_ingest else {n: ingest(args.data, args.root, n, args.force) for n in names}
    if args.indexed_only:
        rows, queries = indexed_queries(args.root, names, rows, queries)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = {"ingest": ingested.get(name, {}), **run_eval(args.root, name, queries, rows)}
        took = ingested.get(name) or "skipped"
        print(f"{name}: ingest {took}, search {results[name]['search_ms']} ms/query", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print_table(results)
    if args.per_query:
        print_per_query(results, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
