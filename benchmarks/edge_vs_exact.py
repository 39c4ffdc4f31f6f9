"""Does the embedded engine change retrieval? The same index searched by Qdrant Edge (HNSW) and exactly.

Copies an ingested Edge collection into qdrant-client's local mode (brute-force search, the previous
release's embedded store) with `copy_index`, then runs `caprl-index eval`'s metrics through the same
`Searcher` on both and prints the gold page's rank per question for each.

    python benchmarks/eval_mmlongbench.py --root /tmp/caprl-mmlb --pipelines default
    python benchmarks/edge_vs_exact.py --qdrant-path /tmp/caprl-mmlb/default --collection mmlb_default
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qdrant_client import QdrantClient  # noqa: E402

from caprl_index.config import Settings  # noqa: E402
from caprl_index.evaluate import evaluate, load_queries  # noqa: E402
from caprl_index.search import Searcher  # noqa: E402
from caprl_index.store import QdrantStore  # noqa: E402
from caprl_index.store.server import ServerEngine  # noqa: E402
from caprl_index.store.transfer import copy_index  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qdrant-path", required=True)
    parser.add_argument("--collection", default="caprl")
    parser.add_argument("--queries", default=str(ROOT.parent / "shared/data/mmlongbench-dev/queries.jsonl"))
    args = parser.parse_args()
    settings = Settings(qdrant_path=args.qdrant_path, collection=args.collection)
    queries = load_queries(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        edge = QdrantStore(settings, create=False)
        exact = ServerEngine(QdrantClient(path=tmp), args.collection)
        start = time.perf_counter()
        copy_index(edge.engine, exact)
        print(f"copied {exact.count()} points in {time.perf_counter() - start:.1f} s")
        on_edge = Searcher(settings, store=edge)
        results = {"edge": evaluate(on_edge, queries)}
        results["exact"] = evaluate(
            Searcher(settings, embedder=on_edge.embedder, store=QdrantStore(settings, engine=exact)), queries
        )
        for name, r in results.items():
            print(name, json.dumps({k: v for k, v in r.items() if k != "ranks"}))
        same = results["edge"]["ranks"] == results["exact"]["ranks"]
        print("gold-page ranks identical for every question" if same else "ranks differ:")
        if not same:
            for q, a, b in zip(queries, results["edge"]["ranks"], results["exact"]["ranks"], strict=True):
                if a != b:
                    print(f"  {q.question[:70]!r}: edge {a}, exact {b}")


if __name__ == "__main__":
    main()
