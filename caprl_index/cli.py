"""`caprl-index` command line: a thin shell over the library (pipeline, search, status, eval)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from caprl_index import __version__
from caprl_index.errors import CaprlError, ConfigError
from caprl_index.terminal import json_text, safe

if TYPE_CHECKING:
    from caprl_index.config import Settings

# What runs before a command is chosen imports nothing heavy: `--help` and `status` start in a fraction of
# a second, and each command imports what it needs (tests/test_cold_start.py holds the CLI to it).

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,  # rebind to the current stderr on every call (tests, embedding in other programs)
    )
    _quiet_libraries(verbose=args.verbose)
    try:
        settings = settings_from_args(args)
        return int(args.func(args, settings))
    except CaprlError as exc:
        print(f"error: {safe(exc, newlines=True)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: the index holds every file completed so far; run ingest again to finish", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `caprl-index status | head -1`: the reader has what it wanted
        return EXIT_PARTIAL
    except Exception as exc:  # a bug: one line for the user, the traceback with -v
        logging.getLogger("caprl_index").debug("internal error", exc_info=True)
        print(
            f"error: internal error ({type(exc).__name__}: {safe(exc)}); nothing indexed was lost. "
            "Run again with -v for the details and report it.",
            file=sys.stderr,
        )
        return EXIT_USAGE


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags override environment, which overrides caprl-index.toml, which overrides defaults."""
    from pydantic import ValidationError

    from caprl_index.config import Settings

    flags = {
        "vllm_url": args.vllm_url,
        "qdrant_url": args.qdrant_url,
        "qdrant_path": args.qdrant_path,
        "collection": getattr(args, "collection", None),
        "captioner": getattr(args, "captioner", None),
        "shards": getattr(args, "shards", None),
        "replication_factor": getattr(args, "replication_factor", None),
        "workers": getattr(args, "workers", None),
    }
    if getattr(args, "no_figures", False):
        flags["figures"] = False
    try:
        config = Path(args.config) if getattr(args, "config", None) else None
        return Settings.load(config, **{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caprl-index",
        description="Index PDFs and slide decks, charts and figures included (CapRL-3B via vLLM), into Qdrant.",
    )
    _connection_options(parser)
    # The sub-commands take the same options after their name. Theirs are SUPPRESSed when absent: argparse
    # copies a sub-parser's defaults over the main parser's values, which would drop
    # `caprl-index --qdrant-path X ingest ...`'s path and index into the default folder instead.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _connection_options(common)
    parser.add_argument("--version", action="version", version=f"caprl-index {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from caprl_index import commands

    commands.register(sub, common)
    return parser


def _connection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection (flags override CAPRL_* environment and caprl-index.toml)")
    g.add_argument("--vllm-url", help="vLLM base URL(s), comma-separated [CAPRL_VLLM_URL]")
    g.add_argument("--qdrant-url", help="Qdrant server URL; unset = embedded store [CAPRL_QDRANT_URL]")
    g.add_argument("--qdrant-path", help="embedded store folder [CAPRL_QDRANT_PATH]")
    g.add_argument("--collection", help="collection name [CAPRL_COLLECTION]")
    g.add_argument("--config", help="config file (default ./caprl-index.toml) [CAPRL_CONFIG]")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _quiet_libraries(*, verbose: bool = False) -> None:
    # One "HTTP Request: POST ..." line per caption would scroll over the progress bar; -v shows them.
    level = logging.DEBUG if verbose else logging.WARNING
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "sentence_transformers", "qdrant_client"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("transformers").setLevel(logging.WARNING)
    # The chunker measures long texts with the model's tokenizer on purpose; its length warning is noise.
    logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


def run() -> NoReturn:
    """The console script and `python -m caprl_index.cli`: `main()`, then a quick exit.

    Everything a command opened is closed when `main` returns (the store, the parser and OCR processes,
    the model's threads). What is skipped is the interpreter's teardown, freeing module by module what
    an ingest imported (LlamaIndex, NLTK, ONNX Runtime: thousands of modules): 0.5-0.6 s of a 5 s cold
    ingest. Threads still running are joined, atexit handlers run and the streams are flushed, as at a
    normal exit."""
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, a usage error
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # logging's shutdown, multiprocessing's cleanup, temporary files
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`): the reader has taken its part
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
