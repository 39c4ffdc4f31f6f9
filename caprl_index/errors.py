"""Exceptions raised by caprl-index.

    CaprlError
    ├── ConfigError              bad option or configuration value (CLI exit 2)
    ├── CaptionerUnavailable     vLLM required but unreachable / model not served (exit 2)
    ├── StoreError               Qdrant unreachable, collection mismatch, folder locked or damaged (exit 2)
    ├── EmbeddingFailed          the embedding server failed on one batch after retries (that file fails)
    └── DocumentError            one input file cannot be read (collected per file, exit 1)
        ├── UnsupportedFile      extension/content not supported
        ├── EncryptedFile        password-protected PDF
        └── CorruptFile          damaged, truncated, empty or oversized file

Every message names the file or setting and says how to fix it.
"""

from __future__ import annotations


class CaprlError(Exception):
    """Base class for all caprl-index errors."""


class ConfigError(CaprlError):
    """A configuration value or command-line option is invalid."""


class CaptionerUnavailable(CaprlError):
    """The vLLM captioner cannot be reached or does not serve the configured model."""


class StoreError(CaprlError):
    """The Qdrant store cannot be opened or used."""


class EmbeddingFailed(CaprlError):
    """The embedding server failed on one batch after its retries; that batch's file fails, the run goes on."""


class DocumentError(CaprlError):
    """One input document cannot be processed; other files are unaffected."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Raised in worker processes: must survive pickling back to the parent intact.
        return (type(self), (self.path, self.reason))


class UnsupportedFile(DocumentError):
    """The file type is not supported."""


class EncryptedFile(DocumentError):
    """The document is password-protected."""


class CorruptFile(DocumentError):
    """The document is damaged, truncated, empty or too large to process safely."""
