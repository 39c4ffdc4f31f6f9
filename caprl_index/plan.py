"""Decide what an ingest run must do: which files are new, changed, pending captions, gone or unreadable.

Unchanged files are recognised without opening them: same size and mtime as recorded → recorded hash;
otherwise the file is hashed and compared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caprl_index.config import Settings
from caprl_index.errors import UnsupportedFile
from caprl_index.figures import DETECTION_VERSION
from caprl_index.models import FileFailure, SourceFile
from caprl_index.sources.discover import SUPPORTED_EXTENSIONS, in_shard, is_supported, iter_paths, sha256_file
from caprl_index.store.sparse import VERSION as SPARSE_VERSION

RECORD_VERSION = 1


@dataclass
class FilePlan:
    seen: int = 0
    todo: list[SourceFile] = field(default_factory=list)  # new, changed, forced or incomplete
    pending: list[SourceFile] = field(default_factory=list)  # complete but with figures awaiting vLLM
    stale_prompt: list[SourceFile] = field(default_factory=list)  # captioned with another prompt version
    skipped: list[SourceFile] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)


def fingerprint(settings: Settings, embed_name: str) -> str:
    """What, besides the file's bytes, decides its points: a change re-ingests the file."""
    chunking = f"chunk={settings.chunk_size}/{settings.chunk_overlap}"
    split = f"fig={settings.figures}|split={DETECTION_VERSION}"  # the version covers page text too
    # What OCR read (scans; inside figures, off for --captioner none) is part of the text too.
    split += f"|ocr={int(settings.ocr)}{int(settings.figure_ocr)}"
    return f"v{RECORD_VERSION}|{split}|{chunking}|{embed_name}|sparse={SPARSE_VERSION}"


def record_for(file: SourceFile, **fields: Any) -> dict[str, Any]:
    """The file record stored once all of a file's points are written."""
    stat = _stat(file.path)
    return {
        "file_path": file.path,
        "file_name": file.name,
        "file_sha256": file.sha256,
        "size": file.size,
        "mtime_ns": stat.st_mtime_ns if stat else None,
        "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": True,
        **fields,
    }


def plan_files(paths: Sequence[str | Path], store: Any, settings: Settings, options: Any, embed_name: str) -> FilePlan:
    """Walk `paths` and sort every file into the plan (runs in the store thread: reads records)."""
    from caprl_index.captioning import prompt_version

    plan = FilePlan()
    records = store.records()
    fp = fingerprint(settings, embed_name)
    on_disk: set[str] = set()
    for path in iter_paths(paths):
        if options.shard and not in_shard(path, *options.shard):
            continue
        plan.seen += 1
        on_disk.add(str(path))
        if not is_supported(path):
            exts = " ".join(sorted(SUPPORTED_EXTENSIONS))
            err = UnsupportedFile(str(path), f"unsupported file type {path.suffix or '(none)'!r}; supported: {exts}")
            plan.failures.append(FileFailure(path=str(path), reason=err.reason))
            continue
        try:
            file = _source_file(path, records.get(str(path)))
        except OSError as exc:
            plan.failures.append(FileFailure(path=str(path), reason=f"cannot read: {exc.strerror or exc}"))
            continue
        _classify(plan, file, records.get(file.path), fp, options, prompt_version(settings))
    if options.prune:
        plan.prune = [
            p
            for p in records
            if p not in on_disk and not Path(p).exists() and (not options.shard or in_shard(p, *options.shard))
        ]
    return plan


def _classify(plan: FilePlan, file: SourceFile, record: dict | None, fp: str, options: Any, prompt: str) -> None:
    changed = record is None or record.get("file_sha256") != file.sha256 or record.get("fingerprint") != fp
    if options.force or changed or record is None or not record.get("complete"):
        plan.todo.append(file)
    elif record.get("captions_pending", 0) > 0:
        plan.pending.append(file)
    elif options.recaption and record.get("prompt_version") not in (None, prompt):
        plan.stale_prompt.append(file)
    else:
        plan.skipped.append(file)


def _source_file(path: Path, record: dict | None) -> SourceFile:
    stat = path.stat()
    if record and record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns:
        return SourceFile(path=str(path), sha256=record["file_sha256"], size=stat.st_size)
    return SourceFile(path=str(path), sha256=sha256_file(path), size=stat.st_size)


def _stat(path: str) -> Any:
    try:
        return Path(path).stat()
    except OSError:
        return None
