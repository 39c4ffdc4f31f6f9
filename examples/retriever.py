"""`caprl-index search` from LlamaIndex: CapRLRetriever over the CLI's index, the same ranking and options.

    caprl-index ingest examples/docs
    python examples/retriever.py "battery storage prices by year" -k 5 [--kind figure] [--pages 2-4]
        [--file 'solar*'] [--group-by-page] [--dense-only] [--json] [--async]

The index is the CLI's (CAPRL_QDRANT_PATH for the embedded one, CAPRL_QDRANT_URL for a server,
CAPRL_COLLECTION), opened read-only. `--json` prints exactly what `caprl-index search --json` prints for the
same options; `--async` runs the query through `aretrieve`. Filters are LlamaIndex `MetadataFilters`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from caprl_index.config import Settings
from caprl_index.llama import CapRLRetriever, FigureNode, to_hit


def metadata_filters(kind: str | None, pages: str | None) -> MetadataFilters | None:
    """`--kind` and `--pages A-B` as LlamaIndex filters (the retriever turns them into Qdrant's)."""
    filters: list[MetadataFilter | MetadataFilters] = [MetadataFilter(key="kind", value=kind)] if kind else []
    if pages:
        first, sep, last = pages.partition("-")
        if first:
            filters.append(MetadataFilter(key="page", value=int(first), operator=FilterOperator.GTE))
        if last or not sep:
            filters.append(MetadataFilter(key="page", value=int(last or first), operator=FilterOperator.LTE))
    return MetadataFilters(filters=filters) if filters else None


def show(results: list[NodeWithScore]) -> None:
    for rank, result in enumerate(results, 1):
        m = result.node.metadata
        what = m["kind"] if m["kind"] == "text" else f"{m['kind']}:{m.get('figure_type')}"
        image = f"  image={result.node.image_path}" if isinstance(result.node, FigureNode) else ""
        snippet = " ".join(result.node.get_content().split())[:140]
        print(f"{rank}. {result.score:.4f}  {m['file_name']} p.{m['page']}  {what}{image}\n   {snippet}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("query")
    parser.add_argument("-k", type=int, default=10, help="results (default 10)")
    parser.add_argument("--kind", choices=("text", "figure", "page"))
    parser.add_argument("--pages", metavar="A-B", help="page range, 1-based, inclusive")
    parser.add_argument("--file", metavar="GLOB", help="only files whose path or name matches")
    parser.add_argument("--group-by-page", action="store_true", help="one result per page")
    parser.add_argument("--dense-only", action="store_true", help="no BM25 fusion")
    parser.add_argument("--json", action="store_true", help="the objects `caprl-index search --json` prints")
    parser.add_argument("--async", dest="use_async", action="store_true", help="retrieve with aretrieve")
    args = parser.parse_args(argv)

    with CapRLRetriever(
        settings=Settings(),
        similarity_top_k=args.k,
        hybrid=not args.dense_only,
        group_by_page=args.group_by_page,
        filters=metadata_filters(args.kind, args.pages),
        file_glob=args.file,
    ) as retriever:
        results = asyncio.run(retriever.aretrieve(args.query)) if args.use_async else retriever.retrieve(args.query)
    if args.json:
        print(json.dumps([to_hit(r).as_json() for r in results], indent=2, ensure_ascii=False))
    else:
        show(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
