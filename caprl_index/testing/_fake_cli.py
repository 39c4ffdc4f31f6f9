"""``python -m caprl_index.testing.fake_vllm``: the fake caption server as a process, for benchmarks and by hand."""

from __future__ import annotations

import argparse
import signal
import threading
from contextlib import suppress

from caprl_index.testing._fake_dialects import KINDS


def serve(argv: list[str] | None = None) -> None:
    """Serve until interrupted; prints ``ready <url>`` once listening."""
    from caprl_index.testing.fake_vllm import FakeVLLM

    parser = argparse.ArgumentParser(prog="python -m caprl_index.testing.fake_vllm", description=FakeVLLM.__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="caprl", help="served model name")
    parser.add_argument("--kind", choices=KINDS, default="vllm", help="server whose protocol quirks to imitate")
    parser.add_argument("--family", choices=("qwen2.5-vl", "qwen3-vl", "generic"), default="qwen2.5-vl")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--max-model-len", type=int, default=32768, help="context per request (per slot)")
    parser.add_argument("--latency", type=float, default=0.0, help="fixed seconds per request")
    parser.add_argument("--per-token", type=float, default=0.0, help="extra seconds per output token")
    parser.add_argument("--max-num-seqs", type=int, default=None, help="requests generated at once (slots)")
    parser.add_argument("--caption-words", type=int, nargs=2, default=(60, 200), metavar=("MIN", "MAX"))
    parser.add_argument("--old-errors", action="store_true", help="pre-2025 vLLM error bodies")
    args = parser.parse_args(argv)
    server = FakeVLLM(
        args.model,
        kind=args.kind,
        family=args.family,
        port=args.port,
        api_key=args.api_key,
        max_model_len=args.max_model_len,
        latency_s=args.latency,
        latency_per_token_s=args.per_token,
        max_num_seqs=args.max_num_seqs,
        caption_words=tuple(args.caption_words),
        error_format="old" if args.old_errors else "new",
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with server:
        print(f"ready {server.url}", flush=True)
        with suppress(KeyboardInterrupt):
            done.wait()
