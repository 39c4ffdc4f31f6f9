"""The sub-commands of the CLI. Each is a small function over the library."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from caprl_index.config import Settings
from caprl_index.errors import ConfigError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common], help="index files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--captioner", choices=["auto", "vllm", "ocr", "none"], help="figure captioner [auto]")
    p.add_argument("--no-figures", action="store_true", help="index page text only (text-only baseline)")
    p.add_argument("--prune", action="store_true", help="remove files that are no longer on disk")
    p.add_argument("--force", action="store_true", help="re-ingest unchanged files too")
    p.add_argument("--recaption", action="store_true", help="re-caption figures made with an older prompt")
    p.add_argument("--strict", action="store_true", help="stop at the first file that fails")
    p.add_argument("--shard", metavar="I/N", help="ingest only this machine's part of the files (1-based)")
    p.add_argument("--shards", type=_positive, help="shard_number when the collection is created")
    p.add_argument("--replication-factor", type=_positive, help="replication_factor when the collection is created")
    p.add_argument("--workers", type=_positive, help="parser processes (default: CPUs)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", parents=[common], help="search the collection")
    p.add_argument("query")
    p.add_argument("-k", type=_positive, default=10, help="results [10]")
    p.add_argument("--kind", choices=["text", "figure", "page"])
    p.add_argument("--file", dest="file_glob", metavar="GLOB", help="only files whose path or name matches")
    p.add_argument("--pages", metavar="A-B", help="page range, e.g. 3-10")
    p.add_argument("--group-by", choices=["page"], help="best chunk per page")
    p.add_argument("--dense-only", action="store_true", help="no BM25 fusion")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("status", parents=[common], help="what the collection holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("delete", parents=[common], help="remove files' points")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("caption", parents=[common], help="caption one image with the configured caption server")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser(
        "doctor", parents=[common], help="check the caption servers, Qdrant, the embedding model, OCR, LibreOffice"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("eval", parents=[common], help="page-level retrieval metrics for a JSONL of questions")
    p.add_argument("queries", metavar="QUERIES.jsonl")
    p.add_argument("-k", type=_positive, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def _positive(value: str) -> int:
    """argparse type: an integer >= 1 (a usage error, exit 2, otherwise)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not allowed: give 1 or more")
    return number


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.pipeline import IngestOptions, ingest
    from caprl_index.progress import make_reporter
    from caprl_index.report import print_summary
    from caprl_index.sources.discover import parse_shard

    options = IngestOptions(
        force=args.force,
        prune=args.prune,
        recaption=args.recaption,
        strict=args.strict,
        shard=parse_shard(args.shard) if args.shard else None,
    )
    stats = ingest(args.paths, settings, options, make_reporter())
    print_summary(stats, settings)
    return EXIT_PARTIAL if stats.failures else EXIT_OK


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.cli import print_json
    from caprl_index.report import print_hits
    from caprl_index.search import Searcher, SearchFilters

    if not args.query.strip():
        raise ConfigError('the query is empty: give the words to search for, e.g. caprl-index search "solar prices"')
    lo, hi = _page_range(args.pages)
    filters = SearchFilters(kind=args.kind, file_glob=args.file_glob, page_from=lo, page_to=hi)
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
        print_hits(hits)
    return EXIT_OK


def _page_range(spec: str | None) -> tuple[int | None, int | None]:
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


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.cli import print_json
    from caprl_index.report import collection_status, print_status
    from caprl_index.store import QdrantStore

    store = QdrantStore(settings, create=False)
    try:
        status = collection_status(store)
    finally:
        store.close()
    print_json(status) if args.json else print_status(status)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.sources.discover import absolute
    from caprl_index.store import QdrantStore
    from caprl_index.terminal import safe

    targets = [str(absolute(p)) for p in args.paths]
    store = QdrantStore(settings, create=False)
    try:
        records = store.records()
        doomed = [p for p in records if any(p == t or p.startswith(t.rstrip("/") + "/") for t in targets)]
        for path in doomed:
            store.delete_file(path)
            print(f"deleted {safe(path)}")
    finally:
        store.close()
    if not doomed:
        print("nothing indexed under " + ", ".join(safe(t) for t in targets), file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_caption(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.captioning import caption_image_report
    from caprl_index.cli import print_json

    path = Path(args.image)
    if not path.is_file():
        raise ConfigError(f"{path}: no such image")
    report = asyncio.run(caption_image_report(path, settings))
    cap, setup = report.caption, report.setup
    info = {
        "model": cap.model,
        "source": cap.source,
        "latency_s": round(cap.latency_s, 3),
        "prompt_tokens": cap.prompt_tokens,
        "completion_tokens": cap.completion_tokens,
        "truncated": cap.truncated,
        "error": cap.error,
        "family": setup.family.name,
        "server_kinds": {p.url: p.kind for p in setup.probes},
        "image_tokens_budget": setup.budget.tokens,
        "image_size": list(report.original_size),
        "sent_size": list(report.sent_size),
        "visual_tokens": report.visual_tokens,
        "prompt_version": cap.prompt_version,
        "caption": cap.text,
    }
    if args.json:
        print_json(info)
    else:
        print(cap.text)
        _print_caption_footer(report)
    return EXIT_OK if cap.source == "vllm" else EXIT_USAGE


def _print_caption_footer(report: Any) -> None:
    cap, setup = report.caption, report.setup
    kinds = ", ".join(sorted({p.kind for p in setup.probes}))
    (w, h), (sw, sh) = report.original_size, report.sent_size
    print(
        f"\n-- {cap.model or cap.source} on {kinds}, {setup.family.name}, budget {setup.budget.tokens:,} visual "
        f"tokens: {w}x{h} sent as {sw}x{sh} = {report.visual_tokens:,} visual tokens; {cap.latency_s:.3f} s, "
        f"{cap.prompt_tokens} tokens in, {cap.completion_tokens} out{', TRUNCATED' if cap.truncated else ''}",
        file=sys.stderr,
    )


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.cli import print_json
    from caprl_index.doctor import run_checks

    checks = run_checks(settings)
    if args.json:
        print_json(checks)
    else:
        for c in checks:
            mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[c["state"]]
            print(f"[{mark}] {c['name']}: {c['detail']}")
    return EXIT_USAGE if any(c["state"] == "fail" for c in checks) else EXIT_OK


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
