"""`caprl-index ingest`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from caprl_index.commands import EXIT_OK, EXIT_PARTIAL, positive
from caprl_index.service.client import add_server_option, server_for

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


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
    p.add_argument("--shards", type=positive, help="shard_number when the collection is created")
    p.add_argument("--replication-factor", type=positive, help="replication_factor when the collection is created")
    p.add_argument("--workers", type=positive, help="parser processes (default: CPUs)")
    add_server_option(p)
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.pipeline import IngestOptions, ingest
    from caprl_index.progress import make_reporter
    from caprl_index.report import print_summary
    from caprl_index.sources.discover import parse_shard

    client = server_for(settings, args.server)
    if client is not None:  # a running `serve` holds the index: the ingest becomes one of its jobs
        return _through_server(client, args)
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


def _through_server(client: Any, args: argparse.Namespace) -> int:
    from caprl_index.errors import ConfigError
    from caprl_index.service.remote import remote_ingest
    from caprl_index.sources.discover import absolute

    local_only = [f"--{n}" for n in ("shard", "shards", "replication_factor", "workers") if getattr(args, n)]
    if local_only:
        raise ConfigError(
            f"{' '.join(o.replace('_', '-') for o in local_only)}: not available through caprl-index serve "
            f"(at {client.url}); stop it to run this ingest locally"
        )
    options = {
        "force": args.force, "prune": args.prune, "recaption": args.recaption, "strict": args.strict,
        "captioner": args.captioner, "no_figures": args.no_figures,
    }  # fmt: skip
    return remote_ingest(client, [str(absolute(p)) for p in args.paths], options)
