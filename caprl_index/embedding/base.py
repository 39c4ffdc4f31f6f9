"""The Embedder protocol and the factory that picks a backend from the settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from caprl_index.config import Settings
from caprl_index.errors import ConfigError


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
    """The configured embedder; the model itself loads lazily on first use.

    A local model shaped like the packaged all-MiniLM-L6-v2 (BERT, mean pooling, normalised) runs on ONNX
    Runtime by default (`embed_backend` auto or onnx) or on the NumPy encoder (numpy): the same vectors as
    sentence-transformers without importing torch, which alone takes seconds and hundreds of MB. Any other
    model, and `embed_backend` torch, runs on sentence-transformers (`benchmarks/bench_embed.py` measures
    all three).
    """
    if settings.embed_url:
        from caprl_index.embedding.openai_api import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    backend = settings.embed_backend
    if backend != "torch":
        encoder: Embedder | None
        if backend == "numpy":
            from caprl_index.embedding.query import open_query_encoder

            encoder = open_query_encoder(settings)
        else:
            from caprl_index.embedding.onnx_bert import open_onnx_encoder

            encoder = open_onnx_encoder(settings)
        if encoder is not None:
            return encoder
        if backend != "auto":
            raise ConfigError(
                f"embed_backend {backend} cannot run {settings.embed_model!r} (it runs BERT models with mean "
                "pooling and normalisation, like all-MiniLM-L6-v2): set CAPRL_EMBED_BACKEND=auto or torch"
            )
    from caprl_index.embedding.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings.embed_model, batch_size=settings.embed_batch_size)
