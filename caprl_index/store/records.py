"""The file record: what the index knows about one source file, stored once all its points are written.

A record with `complete=True` promises that exactly `points` points of version `file_sha256` are in the
collection; `ingest` checks that promise against a count and re-indexes a file whose points went missing.
A record with `complete=False` remembers why a file failed (for `status`, and so the next run retries it).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

RECORD_VERSION = 1


@dataclass
class FileRecord:
    """One ingested (or failed) file."""

    file_path: str
    file_sha256: str = ""
    file_name: str = ""
    size: int = 0
    mtime_ns: int | None = None
    ingested_at: str = ""
    complete: bool = False
    page_count: int = 0
    points: int = 0
    figures: int = 0
    caption_sources: dict[str, int] = field(default_factory=dict)  # figures by caption_source
    captions_pending: int = 0  # figures indexed with OCR text (or none) that vLLM can caption later
    caption_errors: dict[str, int] = field(default_factory=dict)  # failed captions by reason
    prompt_version: str | None = None
    fingerprint: str = ""  # settings that decide the points (see plan.fingerprint)
    error: str = ""  # why the file failed (complete=False)
    last_error: str = ""  # why a newer version failed while this complete one stays indexed
    last_error_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.file_name:
            self.file_name = self.file_path.rsplit("/", 1)[-1]
        if not self.ingested_at:
            self.ingested_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    @property
    def failed(self) -> bool:
        return not self.complete or bool(self.last_error)

    def to_payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileRecord:
        """Read a stored record; keys of other releases are tolerated (unknown dropped, missing defaulted)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in payload.items() if k in names}
        errors = values.get("caption_errors")
        if isinstance(errors, list):  # release 0.1 kept up to five reasons, without counts
            values["caption_errors"] = {str(e): 1 for e in errors}
        return cls(**values)
