"""Human-readable output: the ingest summary, search hits and collection status."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

from caprl_index.config import Settings
from caprl_index.models import RunStats


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_lines(stats: RunStats) -> list[str]:
    """The final summary of an ingest run (also used by tests)."""
    s = stats
    lines = [
        f"files: {s.files_indexed} indexed, {s.files_skipped} unchanged, {s.files_failed} failed"
        + (f", {s.files_pruned} pruned" if s.files_pruned else ""),
        f"pages: {s.pages}  figures: {s.figures}  points: {s.points}",
    ]
    if s.figures:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(s.captions_by_source.items())) or "-"
        lines.append(
            f"captions: {sources}; cache hits {s.cache_hits}; failed {s.caption_failures}; "
            f"truncated {s.truncated_captions}"
        )
    if s.latencies:
        lines.append(
            f"vLLM: tokens in {s.prompt_tokens}, out {s.completion_tokens}; latency p50 "
            f"{statistics.median(s.latencies):.2f} s, p95 {_percentile(s.latencies, 0.95):.2f} s"
        )
    for f in s.failures:
        lines.append(f"FAILED {f.path}: {f.reason}")
    return lines


def print_summary(stats: RunStats, settings: Settings) -> None:
    for line in summary_lines(stats):
        print(line, file=sys.stderr)
    pending = stats.captions_by_source.get("ocr", 0)
    if pending and settings.captioner in ("auto", "vllm"):
        print(
            f"note: {pending} figure(s) indexed with OCR text only; `caprl-index ingest` again with vLLM "
            f"reachable at {','.join(settings.vllm_url)} captions them.",
            file=sys.stderr,
        )


def print_hits(hits: Sequence[Any], *, width: int = 300) -> None:
    """Ranked hits, two lines each: provenance, then the start of the chunk text."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    for i, h in enumerate(hits, 1):
        kind = h.kind + (f" ({h.figure_type})" if h.figure_type else "")
        bbox = "  bbox " + ",".join(f"{v:.0f}" for v in h.bbox) if h.bbox else ""
        text = " ".join(h.text.split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        console.print(
            f"[bold]{i:>2}.[/bold] {h.score:.3f}  [cyan]{escape(h.file_name)}[/cyan] p.{h.page}  {kind}{bbox}"
        )
        console.print(f"    {escape(text)}")
    if not hits:
        print("no results", file=sys.stderr)


def collection_status(store: Any) -> dict[str, Any]:
    """Files, pages, points, caption sources, pending and failed items of the whole collection."""
    records = store.records()
    complete = [r for r in records.values() if r.get("complete")]
    sources: dict[str, int] = {}
    for r in complete:
        for k, v in (r.get("caption_sources") or {}).items():
            sources[k] = sources.get(k, 0) + v
    return {
        "store": store.describe(),
        "collection": store.collection,
        "files": len(complete),
        "pages": sum(int(r.get("page_count", 0)) for r in complete),
        "points": store.count(),
        "figures": sum(int(r.get("figures", 0)) for r in complete),
        "caption_sources": sources,
        "captions_pending": [
            {"file_path": r["file_path"], "figures": r["captions_pending"]}
            for r in complete
            if r.get("captions_pending")
        ],
        "failed": [
            {
                "file_path": r["file_path"],
                "error": r.get("error") or r.get("last_error", ""),
                "older_version_indexed": bool(r.get("complete")),
            }
            for r in records.values()
            if not r.get("complete") or r.get("last_error")
        ],
        "stale_prompt": [
            r["file_path"] for r in complete if r.get("prompt_version") not in (None, _prompt_version(store.settings))
        ],
        "missing_on_disk": [r["file_path"] for r in complete if not _exists(r["file_path"])],
    }


def _prompt_version(settings: Settings) -> str:
    from caprl_index.captioning import prompt_version

    return prompt_version(settings)


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()


def print_status(status: dict[str, Any]) -> None:
    print(f"collection {status['collection']} in {status['store']}")
    print(f"files {status['files']}  pages {status['pages']}  figures {status['figures']}  points {status['points']}")
    sources = ", ".join(f"{k} {v}" for k, v in sorted(status["caption_sources"].items())) or "-"
    print(f"caption sources: {sources}")
    for item in status["captions_pending"]:
        print(f"pending captions: {item['file_path']} ({item['figures']} figure(s) with OCR text only)")
    for item in status["failed"]:
        older = " (an older version stays indexed)" if item.get("older_version_indexed") else ""
        print(f"failed: {item['file_path']}: {item['error']}{older}")
    for path in status["stale_prompt"]:
        print(f"captioned with an older prompt (ingest --recaption refreshes): {path}")
    for path in status["missing_on_disk"]:
        print(f"missing on disk (ingest --prune removes it): {path}")
