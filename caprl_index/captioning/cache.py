"""Caption cache: SQLite beside the index, keyed by image hash + model + prompt version.

Several ingest processes may share one cache (shards on one machine), so it runs in WAL mode with
autocommit statements (each one a short transaction) and waits on a locked database instead of failing.
Only successful vLLM captions are stored: OCR fallbacks must be retried by the next run. A cache that
fails mid-run (disk full, locked too long) degrades to misses and counts ``errors``; it never fails a figure.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from caprl_index.models import Caption

CACHE_FILE = "captions.sqlite"
_BUSY_TIMEOUT_MS = 10_000  # blocks the event loop while waiting: keep it short
_SCHEMA = """
CREATE TABLE IF NOT EXISTS captions (
    image_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    text TEXT NOT NULL,
    served_model TEXT,
    truncated INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    PRIMARY KEY (image_sha256, model, prompt_version)
)
"""


class CaptionCache:
    """Captions already written, so a re-run sends no request for them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.errors = 0
        self.last_error: str | None = None
        # isolation_level=None: autocommit, so no transaction stays open between statements.
        self._db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, image_sha256: str, model: str, prompt_version: str) -> Caption | None:
        try:
            row = self._db.execute(
                "SELECT text, served_model, truncated, prompt_tokens, completion_tokens FROM captions "
                "WHERE image_sha256 = ? AND model = ? AND prompt_version = ?",
                (image_sha256, model, prompt_version),
            ).fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return None
        if row is None:
            return None
        text, served, truncated, prompt_tokens, completion_tokens = row
        return Caption(
            text=text,
            source="vllm",
            model=served or model,
            prompt_version=prompt_version,
            truncated=bool(truncated),
            cached=True,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def put(self, image_sha256: str, model: str, caption: Caption) -> None:
        if caption.source != "vllm" or not caption.text or caption.prompt_version is None:
            return
        try:
            self._insert(image_sha256, model, caption)
        except sqlite3.Error as exc:
            self._failed(exc)

    def _failed(self, exc: sqlite3.Error) -> None:
        self.errors += 1
        self.last_error = f"{self.path}: {exc}"

    def _insert(self, image_sha256: str, model: str, caption: Caption) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO captions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image_sha256,
                model,
                caption.prompt_version,
                caption.text,
                caption.model,
                int(caption.truncated),
                caption.prompt_tokens,
                caption.completion_tokens,
                time.time(),
            ),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM captions").fetchone()[0])

    def close(self) -> None:
        self._db.close()
