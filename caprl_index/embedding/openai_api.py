"""OpenAI-compatible /v1/embeddings backend (vLLM, TEI, Ollama, OpenAI...)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from caprl_index.config import Settings
from caprl_index.errors import EmbeddingFailed

_APPROX_CHARS_PER_TOKEN = 4


class OpenAIEmbedder:
    """Embeds through a remote /v1/embeddings endpoint; vectors are L2-normalised here."""

    backend = "embed_url"

    def __init__(self, settings: Settings, *, max_tokens: int = 512) -> None:
        self.name = f"{settings.embed_url}#{settings.embed_model}"
        self._model = settings.embed_model
        self._url = settings.embed_url
        key = settings.embed_api_key.get_secret_value() if settings.embed_api_key else "EMPTY"
        self._key = key
        self._batch = settings.embed_batch_size
        self._max_tokens = max_tokens
        self._client: Any = None
        self._dim: int | None = None

    def _http(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self._url, api_key=self._key, max_retries=3)
        return self._client

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = len(self.embed(["dimension probe"])[0])
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def tokenizer(self) -> Callable[[str], Sequence[object]]:
        # The remote tokenizer is unknown: approximate by characters, conservatively.
        return lambda text: range(math.ceil(len(text) / _APPROX_CHARS_PER_TOKEN))

    def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            out.extend(self._embed_batch(texts[start : start + self._batch]))
        return out

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        from openai import OpenAIError

        try:
            # The SDK retries connection errors, timeouts, 429 and 5xx with backoff (max_retries) first.
            response = self._http().embeddings.create(model=self._model, input=texts)
        except OpenAIError as exc:
            raise EmbeddingFailed(f"embedding server {self._url} failed: {type(exc).__name__}: {exc}") from exc
        vectors = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
        return [_normalise(v) for v in vectors]


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
