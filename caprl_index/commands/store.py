"""`caprl-index migrate` (an index of the previous release → Qdrant Edge) and `push` (embedded → a server)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import TYPE_CHECKING, Any

from caprl_index.commands import EXIT_OK, positive
from caprl_index.errors import ConfigError

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("migrate", parents=[common], help="convert an index of the previous release to Qdrant Edge")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("push", parents=[common], help="copy the embedded index into a Qdrant server or cluster")
    p.add_argument("--to", dest="target_url", metavar="URL", help="the server (default: --qdrant-url)")
    p.add_argument("--shards", type=positive, help="shard_number of the new server collection")
    p.add_argument("--replication-factor", type=positive, help="replication_factor of the new server collection")
    p.set_defaults(func=cmd_push)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.store.transfer import migrate_legacy
    from caprl_index.terminal import safe

    if settings.qdrant_url:
        raise ConfigError("migrate converts an embedded index folder; unset --qdrant-url / CAPRL_QDRANT_URL")
    result = migrate_legacy(settings.qdrant_path, settings.collection, on_progress=_progress("migrated"))
    print(
        f"migrated {', '.join(result.collections)}: {result.points} points, {result.records} file records, "
        f"no embedding or captioning repeated; the old folder is kept as {safe(result.old_folder)}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_push(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.store.edge import EdgeEngine
    from caprl_index.store.server import ServerEngine, connect
    from caprl_index.store.transfer import copy_index
    from caprl_index.terminal import safe

    url = args.target_url or settings.qdrant_url
    if not url:
        raise ConfigError("push needs the server: --qdrant-url URL (or --to URL); the embedded index is the source")
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    if not (settings.qdrant_path / "edge").is_dir():
        raise ConfigError(f"no embedded index in {settings.qdrant_path} to push: check --qdrant-path")
    # Resumable: the copy's progress is kept beside the index, one file per destination.
    digest = hashlib.sha256(f"{url}|{settings.collection}".encode()).hexdigest()[:12]
    state = settings.qdrant_path / f"push-{digest}.json"
    src = EdgeEngine(settings.qdrant_path, settings.collection)
    try:
        dst = ServerEngine(
            connect(url, key),
            settings.collection,
            shards=args.shards or settings.shards,
            replication_factor=args.replication_factor or settings.replication_factor,
            describe=url,
        )
        try:
            result = copy_index(src, dst, state_file=state, on_progress=_progress("pushed"))
        finally:
            dst.close()
    finally:
        src.close()
    resumed = f" (resumed after {result.skipped} copied earlier)" if result.skipped else ""
    print(
        f"pushed {result.points} points and {result.records} file records to {safe(url)}{resumed}. Images stay in "
        f"{safe(settings.index_dir / 'images')}: set CAPRL_IMAGE_ROOT to that folder (or copy it) when you use "
        "the server.",
        file=sys.stderr,
    )
    return EXIT_OK


def _progress(verb: str) -> Any:
    def report(done: int) -> None:
        if done % 10_240 < 512:  # about every 10k points
            print(f"{verb} {done} points…", file=sys.stderr)

    return report
