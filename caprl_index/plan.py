"""Decide what an ingest run must do: which files are new, changed, pending captions, gone or unreadable.

Unchanged files are recognised without opening them: same size and mtime as recorded → recorded hash;
otherwise the file is hashed and compared. A record never outlives its points: a complete record whose
file has fewer or more points than it promises (storage lost, a LlamaIndex delete, a partial restore) sends
the file back to be indexed. Only regular files are opened: a named pipe would block the run forever.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from caprl_index.config import Settings
from caprl_index.figures import DETECTION_VERSION
from caprl_index.models import FileFailure, SourceFile
from caprl_index.sources.discover import SUPPORTED_EXTENSIONS, in_shard, is_supported, iter_paths, sha256_file
from caprl_index.store.payload import PAYLOAD_VERSION
from caprl_index.store.records import RECORD_VERSION, FileRecord
from caprl_index.store.sparse import VERSION as SPARSE_VERSION
from caprl_index.terminal import path as shown_path

if TYPE_CHECKING:
    from caprl_index.pipeline import IngestOptions
    from caprl_index.store import QdrantStore

_SPECIAL = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


@dataclass
class FilePlan:
    seen: int = 0
    todo: list[SourceFile] = field(default_factory=list)  # new, changed, forced, incomplete or repaired
    pending: list[SourceFile] = field(default_factory=list)  # complete but with figures awaiting vLLM
    stale_prompt: list[SourceFile] = field(default_factory=list)  # captioned with another prompt version
    skipped: list[SourceFile] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # complete records whose points were missing
    prune: list[str] = field(default_factory=list)


def fingerprint(settings: Settings, embed_name: str) -> str:
    """What, besides the file's bytes, decides its points: a change re-ingests the file."""
    chunking = f"chunk={settings.chunk_size}/{settings.chunk_overlap}"
    split = f"fig={settings.figures}|split={DETECTION_VERSION}|img={settings.keep_images}"  # covers page text too
    # What OCR read (scans; inside figures, off for --captioner none) is part of the text too.
    split += f"|ocr={int(settings.ocr)}{int(settings.figure_ocr)}"
    return f"v{RECORD_VERSION}|{split}|{chunking}|{embed_name}|sparse={SPARSE_VERSION}|payload={PAYLOAD_VERSION}"


def plan_files(
    paths: Sequence[str | Path], store: QdrantStore, settings: Settings, options: IngestOptions, embed_name: str
) -> FilePlan:
    """Walk `paths` and sort every file into the plan (runs in the store thread: reads records)."""
    from caprl_index.captioning import prompt_version

    plan = FilePlan()
    records = store.records()
    fp, prompt = fingerprint(settings, embed_name), prompt_version(settings)
    on_disk: set[str] = set()
    for path in iter_paths(paths):
        if options.shard and not in_shard(path, *options.shard):
            continue
        plan.seen += 1
        on_disk.add(str(path))
        file_or_failure = _open(path, records)
        if isinstance(file_or_failure, FileFailure):
            plan.failures.append(file_or_failure)
        else:
            _classify(plan, file_or_failure, records.get(file_or_failure.path), fp, options, prompt)
    _check_points(plan, store, records)
    if options.prune:
        plan.prune = [
            p
            for p in records
            if p not in on_disk and not os.path.lexists(p) and (not options.shard or in_shard(p, *options.shard))
        ]
    return plan


def _open(path: Path, records: dict[str, FileRecord]) -> SourceFile | FileFailure:
    """The file's SourceFile, or why it cannot be read (each reason one line, naming the fix)."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        reason = "the file name is not valid UTF-8; rename it (for example `convmv -f latin1 -t utf8 --notest`)"
        return FileFailure(path=shown_path(name), reason=reason)
    if not is_supported(path):
        exts = " ".join(sorted(SUPPORTED_EXTENSIONS))
        return FileFailure(name, f"unsupported file type {path.suffix or '(none)'!r}; supported: {exts}")
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            kind = _SPECIAL.get(stat.S_IFMT(st.st_mode), "not a regular file")
            return FileFailure(name, f"{kind}, not a regular file: skipped (only regular files are read)")
        return _source_file(path, st, records.get(name))
    except OSError as exc:
        return FileFailure(name, _unreadable(path, exc))


def _unreadable(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "the symbolic link points to itself (a link loop); fix or remove the link"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return "broken symbolic link: its target does not exist; fix or remove the link"
    if exc.errno == errno.EACCES:
        return "permission denied; make the file readable by this user (chmod o+r, or run as its owner)"
    return f"cannot read: {exc.strerror or exc}"


def _classify(
    plan: FilePlan, file: SourceFile, record: FileRecord | None, fp: str, options: IngestOptions, prompt: str
) -> None:
    changed = record is None or record.file_sha256 != file.sha256 or record.fingerprint != fp
    if options.force or changed or record is None or not record.complete:
        plan.todo.append(file)
    elif record.captions_pending > 0:
        plan.pending.append(file)
    elif options.recaption and record.prompt_version not in (None, prompt):
        plan.stale_prompt.append(file)
    else:
        plan.skipped.append(file)


def _check_points(plan: FilePlan, store: QdrantStore, records: dict[str, FileRecord]) -> None:
    """Files the plan would leave alone whose points do not match their record go back to `todo`."""
    kept = plan.skipped + plan.pending + plan.stale_prompt
    if not kept:
        return
    counts = store.point_counts(f.path for f in kept)
    lost = {f.path for f in kept if counts.get(f.path, 0) != records[f.path].points}
    if not lost:
        return
    plan.repaired = sorted(lost)
    for group in (plan.skipped, plan.pending, plan.stale_prompt):
        plan.todo += [f for f in group if f.path in lost]
        group[:] = [f for f in group if f.path not in lost]


def _source_file(path: Path, st: os.stat_result, record: FileRecord | None) -> SourceFile:
    if record and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns:
        return SourceFile(path=str(path), sha256=record.file_sha256, size=st.st_size)
    return SourceFile(path=str(path), sha256=sha256_file(path), size=st.st_size)


def file_stat(path: str) -> os.stat_result | None:
    try:
        return Path(path).stat()
    except OSError:
        return None
