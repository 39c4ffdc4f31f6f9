"""A file version's life in the index: its record once its points are stored, the older versions it
replaces, and what a failed attempt leaves behind. Each function runs on the run's store thread."""

from __future__ import annotations

from caprl_index.evidence.gc import doomed, remove_unreferenced
from caprl_index.evidence.store import ImageStore
from caprl_index.models import Caption, RunStats, SourceFile
from caprl_index.plan import file_stat
from caprl_index.report import failure_kind
from caprl_index.store import FileRecord, PointFilter, QdrantStore


def file_record(
    file: SourceFile, page_count: int, points: int, captions: list[Caption], fingerprint: str
) -> FileRecord:
    """The record of a completely stored version: what `status` shows and what the next ingest compares."""
    sources: dict[str, int] = {}
    errors: dict[str, int] = {}
    for c in captions:
        sources[c.source] = sources.get(c.source, 0) + 1
        if c.error:
            kind = failure_kind(c.error)
            errors[kind] = errors.get(kind, 0) + 1
    st = file_stat(file.path)
    return FileRecord(
        file_path=file.path,
        file_sha256=file.sha256,
        size=file.size,
        mtime_ns=st.st_mtime_ns if st else None,
        complete=True,
        page_count=page_count,
        points=points,
        figures=len(captions),
        caption_sources=sources,
        # Figures without a vLLM caption (OCR text, or none asked for) can always be captioned later.
        captions_pending=sum(1 for c in captions if c.source != "vllm"),
        caption_errors=errors,
        prompt_version=next((c.prompt_version for c in captions if c.source == "vllm"), None),
        fingerprint=fingerprint,
    )


def replace_version(
    store: QdrantStore, images: ImageStore | None, file: SourceFile, ids: list[str], record: FileRecord
) -> None:
    """Drop the file's other points (old versions, vanished chunks), record it, then drop their images."""
    stale = PointFilter(file_paths=(file.path,), exclude_ids=tuple(ids))
    gone = doomed(store.points(stale)) if images is not None else None
    store.delete_stale(file.path, ids)
    store.put_record(record)
    if gone is not None and images is not None:
        remove_unreferenced(gone, store, images)


def record_failure(store: QdrantStore, path: str, file: SourceFile | None, reason: str) -> None:
    """Remember the failure for `status`; an older complete version keeps its record (and its points)."""
    record = store.get_record(path)
    sha = file.sha256 if file else ""
    if record and record.complete and record.file_sha256 != sha:
        record.last_error, record.last_error_sha256 = reason, sha
    else:
        record = FileRecord(file_path=path, file_sha256=sha, size=file.size if file else 0, error=reason)
    store.put_record(record)


def discard_partial(store: QdrantStore, images: ImageStore | None, file: SourceFile) -> None:
    """Remove the points a failed attempt wrote for this version; an older complete version stays."""
    record = store.get_record(file.path)
    if record and record.complete and record.file_sha256 == file.sha256:
        return  # the same version is indexed completely; what we wrote overwrote it by id
    version = PointFilter(file_paths=(file.path,), file_sha256=file.sha256)
    gone = doomed(store.points(version)) if images is not None else None
    store.delete_version(file.path, file.sha256)
    if gone is not None and images is not None:
        gone.versions.add(file.sha256)  # pages rendered before the failure, even if no point was written
        remove_unreferenced(gone, store, images)


def count_file(stats: RunStats, page_count: int, points: int, captions: list[Caption]) -> None:
    """Add an indexed file to the run's counters."""
    stats.files_indexed += 1
    stats.pages += page_count
    stats.points += points
    stats.figures += len(captions)
    for c in captions:
        stats.captions_by_source[c.source] = stats.captions_by_source.get(c.source, 0) + 1
        if c.error:
            stats.caption_failures += 1
            kind = failure_kind(c.error)
            stats.caption_errors[kind] = stats.caption_errors.get(kind, 0) + 1
            stats.caption_error_samples.setdefault(kind, c.error)
        stats.truncated_captions += c.truncated
        stats.cache_hits += c.cached
        stats.prompt_tokens += c.prompt_tokens
        stats.completion_tokens += c.completion_tokens
        if c.source == "vllm" and not c.cached:
            stats.latencies.append(c.latency_s)
