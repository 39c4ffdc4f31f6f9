"""`caprl-index show`: write the image behind a hit (or a page) to a PNG and print its path."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caprl_index.commands import EXIT_OK, positive
from caprl_index.errors import ConfigError

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("show", parents=[common], help="write a hit's page (its box drawn) or crop, or a page, to a PNG")
    p.add_argument("target", metavar="ID|FILE", help="a hit id from `search --json`, or an indexed file")
    p.add_argument("--page", type=positive, help="with FILE: the page (1-based) to show, its figures outlined")
    p.add_argument("--crop", action="store_true", help="with ID: the exact crop the captioner saw")
    p.add_argument("--out", metavar="PNG", help="where to write it [./caprl-show-….png]")
    p.add_argument("--open", action="store_true", help="open it in the system image viewer")
    p.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.evidence import open_image_store
    from caprl_index.store import QdrantStore
    from caprl_index.terminal import safe

    store = QdrantStore(settings, create=False)
    images = open_image_store(settings)
    try:
        store.require()
        data, name = _image(args, store, images)
    finally:
        store.close()
    out = Path(args.out) if args.out else Path(f"caprl-show-{name}.png")
    out.write_bytes(data)
    print(safe(out.resolve()))
    if args.open:
        _open(out)
    return EXIT_OK


def _image(args: argparse.Namespace, store: Any, images: Any) -> tuple[bytes, str]:
    from caprl_index.evidence.show import crop_png, page_png, view_of, view_of_page
    from caprl_index.sources.discover import absolute
    from caprl_index.store import PointFilter

    if args.page is not None:
        path = str(absolute(args.target))
        points = store.points(PointFilter(file_paths=(path,), page_from=args.page, page_to=args.page))
        return page_png(view_of_page(points, path, args.page), images), f"{Path(path).stem}-p{args.page}"
    found = store.retrieve([args.target]) if _is_uuid(args.target) else []
    if not found:
        hint = "give FILE --page N to show a page" if not _is_uuid(args.target) else "ids come from `search --json`"
        raise ConfigError(f"{args.target!r} is not a point id in the index; {hint}")
    point = found[0]
    if args.crop:
        return crop_png(point, images), f"{point.id[:8]}-crop"
    return page_png(view_of(point), images), point.id[:8]


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _open(path: Path) -> None:
    viewer = shutil.which("xdg-open") or shutil.which("open")
    if viewer is None:
        print("no image viewer found (xdg-open / open): open the file yourself", file=sys.stderr)
        return
    subprocess.Popen([viewer, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
