"""The Embedder protocol and the factory that picks a backend from the settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from caprl_index.config import Settings


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors."""

    name: str  # identifies the model (stored in file records: a change re-embeds)

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """How many tokens the model reads; longer texts must be split before embedding."""
        ...

    def tokenizer(self) -> Callable[[str], Sequence[object]]:
        """A tokenizer whose token count matches the model's (used to size chunks)."""
        ...

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def open_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the model itself loads lazily on first use."""
    if settings.embed_url:
        from caprl_index.embedding.openai_api import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    from caprl_index.embedding.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings.embed_model, batch_size=settings.embed_batch_size)
