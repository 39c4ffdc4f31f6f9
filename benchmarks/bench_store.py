"""Store benchmark: Qdrant Edge (the embedded engine) at 20k, 100k (and 1M) points, against qdrant-client's
local mode (the previous embedded store) at 20k, in one run.

Points are synthetic with the real shapes (`caprl_index.testing.store_points`): the payload LlamaIndex and
caprl-index write (`_node_content` and all), a 384-d unit vector, a BM25 sparse vector over a Zipf vocabulary.
Each engine and size runs in two fresh processes, so memory and open times are not flattered by the other:
  load   create, upsert in batches of 1,000 (points/s counts the upsert calls only, not making the points),
         then `optimize()` (Edge builds HNSW and the query indexes; timed apart), a file record written
         (ingest writes one per file; Edge flushes there), close; bytes on disk per point
  query  open (timed, imports excluded), 10 warm-up queries, then dense, filtered (dense, kind + a run of
         files, ~5% of the points) and hybrid (dense + BM25 prefetches, RRF, depth 40) queries: p50 / p95;
         RSS at the end
Targets (design.md): at 1M hybrid p50 <= 50 ms, open <= 2 s, upsert >= 10,000 points/s; at 20k, Edge at
least 20x local mode on hybrid queries and on upserts.

    nice -n 10 python benchmarks/bench_store.py [--sizes 20000,100000] [--max 1000000] [--queries 200]
        [--baseline-size 20000 | --no-baseline] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caprl_index.store.engine import Engine  # noqa: E402
from caprl_index.testing.store_points import synthetic_points, synthetic_queries  # noqa: E402

BATCH = 1000
DEPTH, RRF_K, LIMIT = 40, 61, 10  # what `caprl-index search -k 10` asks for


def open_engine(kind: str, folder: Path) -> Engine:
    if kind == "edge":
        from caprl_index.store.edge import EdgeEngine

        return EdgeEngine(folder, "bench")
    from qdrant_client import QdrantClient

    from caprl_index.store.server import ServerEngine

    return ServerEngine(QdrantClient(path=str(folder)), "bench", describe="qdrant-client local mode")


def disk_bytes(folder: Path) -> int:
    # Allocated blocks, not apparent sizes: Edge preallocates its WAL files sparsely (2 x 32 MiB).
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def load_phase(kind: str, n: int, folder: Path) -> dict[str, Any]:
    engine = open_engine(kind, folder)
    engine.create(384)
    upsert_s = 0.0
    for start in range(0, n, BATCH):
        points = synthetic_points(start, min(BATCH, n - start))
        t0 = time.perf_counter()
        engine.upsert(points)
        upsert_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.optimize()
    optimize_s = time.perf_counter() - t0
    # What ingest does once per file: write its record (Edge flushes both shards here, for power-cut safety).
    record_ms = _timed(lambda: engine.put_records([{"file_path": f"/bench/{time.time()}.pdf"}]), 5)
    engine.close()
    return {
        "upsert_pps": n / upsert_s,
        "optimize_s": optimize_s,
        "record_ms": statistics.median(record_ms),
        "disk_bpp": disk_bytes(folder) / n,
    }


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def query_phase(kind: str, n: int, folder: Path, n_queries: int) -> dict[str, Any]:
    queries = synthetic_queries(n_queries + 10, n)
    open_engine(kind, folder.parent / "warm-imports").close()  # imports are not the index's open time
    shutil.rmtree(folder.parent / "warm-imports", ignore_errors=True)
    t0 = time.perf_counter()
    engine = open_engine(kind, folder)
    assert engine.count() == n, f"{kind} holds {engine.count()} points, expected {n}"
    open_s = time.perf_counter() - t0
    for q in queries[:10]:
        engine.query(q.dense, q.sparse, limit=LIMIT, flt=None, depth=DEPTH, rrf_k=RRF_K)
    runs = {
        "dense": lambda q: engine.query(q.dense, None, limit=LIMIT, flt=None, depth=DEPTH, rrf_k=RRF_K),
        "filtered": lambda q: engine.query(q.dense, None, limit=LIMIT, flt=q.flt, depth=DEPTH, rrf_k=RRF_K),
        "hybrid": lambda q: engine.query(q.dense, q.sparse, limit=LIMIT, flt=None, depth=DEPTH, rrf_k=RRF_K),
    }
    out: dict[str, Any] = {"open_s": open_s}
    for name, run in runs.items():
        ms = [_timed(lambda q=q, r=run: r(q), 1)[0] for q in queries[10:]]  # type: ignore[misc]
        out[f"{name}_p50"] = statistics.median(ms)
        out[f"{name}_p95"] = statistics.quantiles(ms, n=20)[18] if len(ms) >= 20 else max(ms)
    out["rss_mb"] = rss() / 2**20
    engine.close()
    return out


def run_child(phase: str, kind: str, n: int, folder: Path, n_queries: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--engine", kind, "--n", str(n), "--dir", str(folder)]
    cmd += ["--queries", str(n_queries)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(kind: str, n: int, base: Path, n_queries: int) -> dict[str, Any]:
    folder = base / f"{kind}-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    row = {"engine": kind, "n": n, **run_child("load", kind, n, folder, n_queries)}
    row.update(run_child("query", kind, n, folder, n_queries))
    row["wall_s"] = time.perf_counter() - t0
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  {kind} {n:,}: done in {row['wall_s']:.0f} s", file=sys.stderr, flush=True)
    return row


COLUMNS = [
    ("upsert pts/s", "upsert_pps", "{:,.0f}"), ("index s", "optimize_s", "{:.1f}"),
    ("record ms", "record_ms", "{:.0f}"), ("open s", "open_s", "{:.2f}"),
    ("dense p50/p95 ms", ("dense_p50", "dense_p95"), "{:.1f}/{:.1f}"),
    ("filtered p50/p95", ("filtered_p50", "filtered_p95"), "{:.1f}/{:.1f}"),
    ("hybrid p50/p95", ("hybrid_p50", "hybrid_p95"), "{:.1f}/{:.1f}"),
    ("RSS MB", "rss_mb", "{:.0f}"), ("disk B/pt", "disk_bpp", "{:,.0f}"), ("wall s", "wall_s", "{:.0f}"),
]  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    head = ["engine", "points", *[c[0] for c in COLUMNS]]
    body = []
    for r in rows:
        cells = [r["engine"], f"{r['n']:,}"]
        for _, key, fmt in COLUMNS:
            cells.append(fmt.format(*[r[k] for k in key]) if isinstance(key, tuple) else fmt.format(r[key]))
        body.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)) for line in [head, *body])


def verdicts(rows: list[dict[str, Any]], baseline_n: int) -> list[str]:
    out = []
    local = next((r for r in rows if r["engine"] == "local"), None)
    edge_base = next((r for r in rows if r["engine"] == "edge" and r["n"] == baseline_n), None)
    if local and edge_base:
        for key, label in (("upsert_pps", "upsert"), ("open_s", "open"), ("dense_p50", "dense p50")):
            ratio = edge_base[key] / local[key] if key == "upsert_pps" else local[key] / edge_base[key]
            out.append(f"{baseline_n:,}: Edge {label} {ratio:.1f}x local mode")
        for key in ("filtered_p50", "hybrid_p50"):
            out.append(f"{baseline_n:,}: Edge {key.replace('_', ' ')} {local[key] / edge_base[key]:.1f}x local mode")
        out.append(f"RSS: Edge {edge_base['rss_mb']:.0f} MB, local mode {local['rss_mb']:.0f} MB")
    biggest = max((r for r in rows if r["engine"] == "edge"), key=lambda r: r["n"], default=None)
    if biggest:
        checks = [
            ("hybrid p50", biggest["hybrid_p50"], "<=", 50.0, "ms"),
            ("open", biggest["open_s"], "<=", 2.0, "s"),
            ("upsert", biggest["upsert_pps"], ">=", 10_000.0, "points/s"),
        ]
        for name, value, op, target, unit in checks:
            ok = value <= target if op == "<=" else value >= target
            out.append(
                f"{biggest['n']:,} target {name} {op} {target:,g} {unit}: {value:,.1f} {'ok' if ok else 'MISSED'}"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,100000", help="comma-separated point counts for Edge")
    ap.add_argument("--max", type=int, default=None, help="one more, larger size (e.g. 1000000)")
    ap.add_argument("--queries", type=int, default=200, help="queries per kind (local mode runs at most 30)")
    ap.add_argument("--baseline-size", type=int, default=20000)
    ap.add_argument("--no-baseline", action="store_true", help="skip qdrant-client local mode")
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--phase", choices=["load", "query"], help=argparse.SUPPRESS)
    ap.add_argument("--engine", choices=["edge", "local"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:  # a child: one phase of one engine, one JSON line out
        result = load_phase(args.engine, args.n, args.dir) if args.phase == "load" else query_phase(
            args.engine, args.n, args.dir, args.queries
        )  # fmt: skip
        print(json.dumps(result))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([args.max] if args.max else [])
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-store-"))
    started = time.perf_counter()
    rows = []
    if not args.no_baseline:
        rows.append(measure("local", args.baseline_size, base, min(args.queries, 30)))
    rows += [measure("edge", n, base, args.queries) for n in sizes]
    print(table(rows))
    print("\n".join(verdicts(rows, args.baseline_size)))
    print(f"total wall time {time.perf_counter() - started:.0f} s, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
