"""`caprl-index search` and `eval`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from caprl_index.commands import EXIT_OK, positive
from caprl_index.errors import ConfigError
from caprl_index.service.client import add_server_option, server_for

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search the collection")
    p.add_argument("query")
    p.add_argument("-k", type=positive, default=10, help="results [10]")
    p.add_argument("--kind", choices=["text", "figure", "page"])
    p.add_argument("--file", dest="file_glob", metavar="GLOB", help="only files whose path or name matches")
    p.add_argument("--pages", metavar="A-B", help="page range, e.g. 3-10")
    p.add_argument("--group-by", choices=["page"], help="best chunk per page")
    p.add_argument("--dense-only", action="store_true", help="no BM25 fusion")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    add_server_option(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("eval", parents=[common], help="page-level retrieval metrics for a JSONL of questions")
    p.add_argument("queries", metavar="QUERIES.jsonl")
    p.add_argument("-k", type=positive, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.cli import print_json
    from caprl_index.report import print_hits
    from caprl_index.search import Hit, Searcher, SearchFilters

    if not args.query.strip():
        raise ConfigError('the query is empty: give the words to search for, e.g. caprl-index search "solar prices"')
    lo, hi = page_range(args.pages)
    filters = SearchFilters(kind=args.kind, file_glob=args.file_glob, page_from=lo, page_to=hi)
    client = server_for(settings, args.server)
    if client is not None:  # a running `serve` holds the index: ask it
        found = client.search(
            args.query, k=args.k, kind=args.kind, file=args.file_glob, pages=args.pages, group_by=args.group_by,
            dense_only=args.dense_only,
        )  # fmt: skip
        hits = [Hit(**h) for h in found]
    else:
        from caprl_index.service.threads import limit_blas_threads

        limit_blas_threads()  # as serve does: the same vectors to the last bit
        searcher = Searcher(settings)
        try:
            searcher.store.require()
            hits = searcher.search(
                args.query, k=args.k, filters=filters, group_by_page=args.group_by == "page", hybrid=not args.dense_only
            )
        finally:
            searcher.close()
    if args.json:
        print_json([h.as_json() for h in hits])
    else:
        from caprl_index.evidence import open_image_store

        print_hits(hits, images=open_image_store(settings))
    return EXIT_OK


def page_range(spec: str | None) -> tuple[int | None, int | None]:
    """``A-B``, ``A-``, ``-B`` or ``A`` (1-based, inclusive) as (first, last); a usage error otherwise."""
    if spec is None:
        return None, None
    try:
        lo, sep, hi = spec.strip().partition("-")
        first = int(lo) if lo else None
        last = (int(hi) if hi else None) if sep else first
    except ValueError:
        raise ConfigError(f"--pages {spec!r}: expected A-B, A-, -B or A (pages count from 1)") from None
    if (first is None and last is None) or any(n is not None and n < 1 for n in (first, last)):
        raise ConfigError(f"--pages {spec!r}: pages count from 1; expected A-B, A-, -B or A")
    if first is not None and last is not None and first > last:
        raise ConfigError(f"--pages {spec!r}: the range is backwards; did you mean {last}-{first}?")
    return first, last


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.cli import print_json
    from caprl_index.evaluate import evaluate, load_queries
    from caprl_index.search import Searcher

    queries = load_queries(args.queries)
    searcher = Searcher(settings)
    try:
        searcher.store.require()
        metrics = evaluate(searcher, queries, k=args.k)
    finally:
        searcher.close()
    metrics.pop("ranks")
    if args.json:
        print_json(metrics)
    else:
        for key, value in metrics.items():
            print(f"{key:>10}  {value}")
    return EXIT_OK
