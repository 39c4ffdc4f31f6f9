"""`caprl-index status` and `delete`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from caprl_index.commands import EXIT_OK, EXIT_PARTIAL
from caprl_index.service.client import add_server_option, server_for

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="what the collection holds")
    p.add_argument("--json", action="store_true")
    add_server_option(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("delete", parents=[common], help="remove files' points")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_server_option(p)
    p.set_defaults(func=cmd_delete)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.cli import print_json
    from caprl_index.report import collection_status, print_status
    from caprl_index.store import QdrantStore

    client = server_for(settings, args.server)
    if client is not None:  # a running `serve` holds the index: ask it
        status = client.status()
    else:
        store = QdrantStore(settings, create=False)
        try:
            status = collection_status(store)
        finally:
            store.close()
    print_json(status) if args.json else print_status(status)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.evidence import open_image_store
    from caprl_index.evidence.gc import remove_file
    from caprl_index.sources.discover import absolute
    from caprl_index.store import QdrantStore
    from caprl_index.terminal import safe

    targets = [str(absolute(p)) for p in args.paths]
    client = server_for(settings, args.server)
    if client is not None:  # a running `serve` holds the index: it deletes, between its other writes
        from caprl_index.service.remote import remote_delete

        return remote_delete(client, targets)
    store = QdrantStore(settings, create=False)
    try:
        doomed = select_files(store.records(), targets)
        images = open_image_store(settings)
        for path in doomed:
            remove_file(store, images, path)
            print(f"deleted {safe(path)}")
    finally:
        store.close()
    if not doomed:
        print("nothing indexed under " + ", ".join(safe(t) for t in targets), file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def select_files(indexed: Iterable[str], targets: Iterable[str]) -> list[str]:
    """The indexed paths that are one of the (absolute) targets or lie under one of them."""
    exact = set(targets)
    folders = [t.rstrip("/") + "/" for t in exact]
    return [p for p in indexed if p in exact or any(p.startswith(f) for f in folders)]
