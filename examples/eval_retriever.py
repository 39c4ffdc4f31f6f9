"""`caprl-index eval` through LlamaIndex: page-level recall@1/5/10 and MRR of CapRLRetriever.

    caprl-index ingest ../shared/data/mmlongbench-dev/documents
    python examples/eval_retriever.py ../shared/data/mmlongbench-dev/queries.jsonl [-k 10] [--async]

Same queries file as `caprl-index eval` (JSONL with question, file, page), same metrics, printed as the JSON
object `caprl-index eval --json` prints. The retriever groups by page (`group_by_page=True`), which is what
`eval` ranks: the two must agree to the last digit. `--async` runs every question concurrently through
`aretrieve` (the store still answers them one at a time, on its own thread).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from llama_index.core.schema import NodeWithScore

from caprl_index.config import Settings
from caprl_index.evaluate import CUTOFFS, Query, load_queries
from caprl_index.llama import CapRLRetriever


def rank_of_gold(results: list[NodeWithScore], query: Query) -> int | None:
    """1-based rank of the gold page among the retrieved pages, or None."""
    for rank, result in enumerate(results, 1):
        m = result.node.metadata
        if m["file_path"] == query.file and m["page"] == query.page:
            return rank
    return None


def metrics(ranks: list[int | None]) -> dict[str, float | int]:
    """The object `caprl-index eval --json` prints (caprl_index.evaluate's rounding)."""
    n = len(ranks)
    out: dict[str, float | int] = {"n": n}
    for cut in CUTOFFS:
        out[f"recall@{cut}"] = round(sum(1 for r in ranks if r and r <= cut) / n, 4) if n else 0.0
    out["mrr"] = round(sum(1.0 / r for r in ranks if r) / n, 4) if n else 0.0
    return out


async def all_results(retriever: CapRLRetriever, queries: list[Query]) -> list[list[NodeWithScore]]:
    return await asyncio.gather(*(retriever.aretrieve(q.question) for q in queries))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("queries", metavar="QUERIES.jsonl")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--async", dest="use_async", action="store_true", help="all questions at once")
    args = parser.parse_args(argv)

    queries = load_queries(args.queries)
    k = max(args.k, *CUTOFFS)
    with CapRLRetriever(settings=Settings(), similarity_top_k=k, group_by_page=True) as retriever:
        if args.use_async:
            results = asyncio.run(all_results(retriever, queries))
        else:
            results = [retriever.retrieve(q.question) for q in queries]
    print(json.dumps(metrics([rank_of_gold(r, q) for r, q in zip(results, queries, strict=True)])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
