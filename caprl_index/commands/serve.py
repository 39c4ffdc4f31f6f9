"""`caprl-index serve`: the index as an HTTP service with a web page (see `caprl_index.service`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port}: a port is 0 to 65535 (0 picks a free one)")
    return port


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="HTTP API and web page over the index")
    p.add_argument("--host", help="address to bind [127.0.0.1; CAPRL_SERVE_HOST]; beyond loopback needs CAPRL_API_KEY")
    p.add_argument("--port", type=_port, help="port [8080; CAPRL_SERVE_PORT]; 0 picks a free one")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from caprl_index.service.server import run

    flags = {"serve_host": args.host, "serve_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in flags.items() if v is not None})
    return run(settings, verbose=args.verbose)
