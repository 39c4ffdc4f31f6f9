"""The sub-commands of the CLI, one module per group; each command is a small function over the library.

ingest.py   ingest
search.py   search, eval
index.py    status, delete
servers.py  caption, doctor
"""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def positive(value: str) -> int:
    """argparse type: an integer >= 1 (a usage error, exit 2, otherwise)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not allowed: give 1 or more")
    return number


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add every sub-command to the `sub` parsers; `common` carries the connection options."""
    from caprl_index.commands import index, ingest, search, servers, show, store

    for module in (ingest, search, index, show, store, servers):
        module.register(sub, common)
