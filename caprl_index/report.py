"""Human-readable output: the ingest summary, search hits and collection status."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from caprl_index.config import Settings
from caprl_index.models import RunStats
from caprl_index.terminal import Styler, safe

if TYPE_CHECKING:
    from caprl_index.store import QdrantStore


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# Kinds of caption failure, in the order they are tested, with what to do about each.
_FAILURE_KINDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("unreadable image", ("cannot read the figure image",), "the crop could not be decoded (a damaged image)"),
    (
        "context too long",
        ("context", "maximum model length"),
        "the image did not fit the model's context: start vLLM with a larger --max-model-len, or lower "
        "CAPRL_IMAGE_TOKENS / CAPRL_MAX_PIXELS",
    ),
    (
        "timeout",
        ("no answer within", "timed out", "timeout"),
        "vLLM did not answer in time: raise CAPRL_REQUEST_TIMEOUT or lower CAPRL_MAX_CONCURRENCY",
    ),
    ("server error", ("http 5",), "vLLM answered with errors: see its log"),
    ("refused", ("http 4",), "vLLM refused the request: check CAPRL_VLLM_MODEL and CAPRL_VLLM_API_KEY"),
    (
        "unreachable",
        ("connection", "connect", "refused", "name or service", "unreachable"),
        "vLLM could not be reached: start it or fix CAPRL_VLLM_URL",
    ),
    ("malformed answer", ("malformed", "empty caption"), "vLLM's answers were malformed or empty: check the server"),
)


def failure_kind(error: str) -> str:
    """The kind of a caption failure reason (server error, timeout, unreachable, context too long, ...)."""
    text = error.lower()
    for kind, words, _ in _FAILURE_KINDS:
        if any(w in text for w in words):
            return kind
    return "other"


def failure_advice(kind: str) -> str:
    return next((advice for k, _, advice in _FAILURE_KINDS if k == kind), "see the reason above")


def summary_lines(stats: RunStats) -> list[str]:
    """The final summary of an ingest run (also used by tests); document-controlled text escaped."""
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
    for kind, n in sorted(s.caption_errors.items(), key=lambda kv: -kv[1]):
        sample = s.caption_error_samples.get(kind, "")
        lines.append(f"caption failures, {kind}: {n} (e.g. {safe(sample)}); {failure_advice(kind)}")
    if s.latencies:
        lines.append(
            f"vLLM: tokens in {s.prompt_tokens}, out {s.completion_tokens}; latency p50 "
            f"{statistics.median(s.latencies):.2f} s, p95 {_percentile(s.latencies, 0.95):.2f} s"
        )
    for f in s.failures:
        lines.append(f"FAILED {safe(f.path)}: {safe(f.reason)}")
    return lines


def closing_note(stats: RunStats, settings: Settings) -> str | None:
    """What to do about figures that have no vLLM caption yet, or None when there are none."""
    without = sum(n for source, n in stats.captions_by_source.items() if source != "vllm")
    if not without or settings.captioner == "none":
        return None
    urls = ",".join(settings.vllm_url)
    if stats.captioner == "ocr" and settings.captioner == "ocr":
        return f"note: {without} figure(s) indexed with OCR text; an `ingest` with vLLM at {urls} captions them."
    if stats.captioner == "ocr" or set(stats.caption_errors) <= {"unreachable"}:
        return (
            f"note: {without} figure(s) indexed with OCR text only; `caprl-index ingest` again with vLLM "
            f"reachable at {urls} captions them."
        )
    return (
        f"note: {without} figure(s) kept their OCR text because vLLM failed on them (reasons above); "
        "the next `caprl-index ingest` retries exactly those."
    )


def print_summary(stats: RunStats, settings: Settings) -> None:
    for line in summary_lines(stats):
        print(line, file=sys.stderr)
    note = closing_note(stats, settings)
    if note:
        print(note, file=sys.stderr)


def print_hits(hits: Sequence[Any], *, width: int = 300, images: Any = None) -> None:
    """Ranked hits: provenance, the start of the chunk text, and where its image is (a file link on a
    terminal, as an OSC 8 hyperlink). Written directly, not through rich: its import was a tenth of a
    search's wall time. Colour only on a terminal, never with NO_COLOR or TERM=dumb."""
    style = Styler.for_stream(sys.stdout)
    lines = []
    for i, h in enumerate(hits, 1):
        kind = h.kind + (f" ({h.figure_type})" if h.figure_type else "")
        bbox = "  bbox " + ",".join(f"{v:.0f}" for v in h.bbox) if h.bbox else ""
        text = " ".join(h.text.split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        lines.append(
            f"{style.bold(f'{i:>2}.')} {h.score:.3f}  {style.cyan(safe(h.file_name))} p.{h.page}  {safe(kind)}{bbox}"
        )
        lines.append(f"    {safe(text)}")
        uri = h.image_uri or h.page_image_uri
        path = images.local_path(uri) if images is not None and uri else None
        if path is not None:
            url = path.resolve().as_uri()  # percent-encoded: nothing of the name reaches the terminal raw
            lines.append(f"    {style.dim('image:')} {style.link(url, safe(path))}")
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    if not hits:
        print("no results", file=sys.stderr)


def collection_status(store: QdrantStore) -> dict[str, Any]:
    """Files, pages, points, caption sources, pending, failed and incomplete items of the collection."""
    records = store.records()  # a missing index folder raises StoreError naming the fix
    complete = [r for r in records.values() if r.complete]
    counts = store.point_counts(r.file_path for r in complete)
    sources: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in complete:
        for k, v in r.caption_sources.items():
            sources[k] = sources.get(k, 0) + v
        for k, v in r.caption_errors.items():
            errors[k] = errors.get(k, 0) + v
    prompt = _prompt_version(store.settings)
    return {
        "store": store.describe(),
        "collection": store.collection,
        "files": len(complete),
        "pages": sum(r.page_count for r in complete),
        "points": store.count(),
        "figures": sum(r.figures for r in complete),
        "caption_sources": sources,
        "caption_failures": errors,
        "captions_pending": [
            {"file_path": r.file_path, "figures": r.captions_pending} for r in complete if r.captions_pending
        ],
        "failed": [
            {"file_path": r.file_path, "error": r.error or r.last_error, "older_version_indexed": r.complete}
            for r in records.values()
            if r.failed
        ],
        "incomplete": [
            {"file_path": r.file_path, "points_expected": r.points, "points_found": counts.get(r.file_path, 0)}
            for r in complete
            if counts.get(r.file_path, 0) != r.points
        ],
        "stale_prompt": [r.file_path for r in complete if r.prompt_version not in (None, prompt)],
        "missing_on_disk": [r.file_path for r in complete if not os.path.lexists(r.file_path)],
        "images": _image_usage(store.settings),
    }


def _image_usage(settings: Settings) -> dict[str, Any]:
    from caprl_index.evidence import open_image_store

    images = open_image_store(settings)
    if images is None:
        return {"kept": False, "bytes": 0}
    return {"kept": True, "root": str(getattr(images, "root", "")), "bytes": images.size_bytes()}


def _prompt_version(settings: Settings) -> str:
    from caprl_index.captioning import prompt_version

    return prompt_version(settings)


def print_status(status: dict[str, Any]) -> None:
    print(f"collection {safe(status['collection'])} in {safe(status['store'])}")
    print(f"files {status['files']}  pages {status['pages']}  figures {status['figures']}  points {status['points']}")
    sources = ", ".join(f"{k} {v}" for k, v in sorted(status["caption_sources"].items())) or "-"
    print(f"caption sources: {sources}")
    images = status["images"]
    if images["kept"]:
        print(f"images: {images['bytes'] / 1_048_576:.1f} MB in {safe(images['root'])}")
    for kind, n in sorted(status["caption_failures"].items(), key=lambda kv: -kv[1]):
        print(f"caption failures, {kind}: {n}; {failure_advice(kind)}")
    for item in status["captions_pending"]:
        print(f"pending captions: {safe(item['file_path'])} ({item['figures']} figure(s) without a vLLM caption)")
    for item in status["failed"]:
        older = " (an older version stays indexed)" if item.get("older_version_indexed") else ""
        print(f"failed: {safe(item['file_path'])}: {safe(item['error'])}{older}")
    for item in status["incomplete"]:
        print(
            f"incomplete (ingest re-indexes it): {safe(item['file_path'])}: {item['points_found']} of "
            f"{item['points_expected']} points"
        )
    for path in status["stale_prompt"]:
        print(f"captioned with an older prompt (ingest --recaption refreshes): {safe(path)}")
    for path in status["missing_on_disk"]:
        print(f"missing on disk (ingest --prune removes it): {safe(path)}")
