"""`caprl-index caption` and `doctor`: the caption servers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caprl_index.commands import EXIT_OK, EXIT_USAGE
from caprl_index.errors import ConfigError

if TYPE_CHECKING:  # Settings (pydantic-settings) costs 0.1-0.2 s to import: not on --help's path
    from caprl_index.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("caption", parents=[common], help="caption one image with the configured caption server")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser(
        "doctor", parents=[common], help="check the caption servers, Qdrant, the embedding model, OCR, LibreOffice"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)


def cmd_caption(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio  # not at the top: 50 ms of every CLI start, --help included

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
