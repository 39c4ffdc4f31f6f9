"""`caprl-index status` and `delete`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from caprl_index.commands import EXIT_OK, EXIT_PARTIAL
from caprl_index.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="what the collection holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("delete", parents=[common], help="remove files' points")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_delete)


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
    from caprl_index.evidence import open_image_store
    from caprl_index.evidence.gc import remove_file
    from caprl_index.sources.discover import absolute
    from caprl_index.store import QdrantStore
    from caprl_index.terminal import safe

    targets = [str(absolute(p)) for p in args.paths]
    store = QdrantStore(settings, create=False)
    try:
        records = store.records()
        doomed = [p for p in records if any(p == t or p.startswith(t.rstrip("/") + "/") for t in targets)]
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
