"""`CapRLEmbedding`: a LlamaIndex embedding over caprl-index's embedder (the model the index was built with)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from caprl_index.config import Settings
from caprl_index.embedding import Embedder, open_embedder
from caprl_index.llama.thread import OneThread


class CapRLEmbedding(BaseEmbedding):
    """LlamaIndex embedding over caprl-index's embedder (default: the packaged all-MiniLM-L6-v2).

    Use it as ``embed_model`` with a stock QdrantVectorStore over a collection the CLI built, or as the
    last transformation of an IngestionPipeline. Pass ``embedder=`` to share an already loaded model.

    The model (and its tokenizer, which keeps state between calls) runs on one thread of its own: LlamaIndex
    embeds from whichever thread calls it, and its async paths from a thread pool.
    """

    _embedder: Embedder = PrivateAttr()
    _thread: OneThread | None = PrivateAttr(default=None)

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None, **kwargs: Any) -> None:
        settings = settings or Settings()
        embedder = embedder or open_embedder(settings)
        kwargs.setdefault("embed_batch_size", settings.embed_batch_size)
        super().__init__(model_name=embedder.name, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "CapRLEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._model_thread().run(self._embedder.embed, list(texts))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._aget_text_embeddings([query]))[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._model_thread().arun(self._embedder.embed, list(texts))

    def _model_thread(self) -> OneThread:
        if self._thread is None:
            self._thread = OneThread("caprl-embed")
        return self._thread

    def __getstate__(self) -> dict[Any, Any]:
        # IngestionPipeline(num_workers>1) pickles transformations: each process starts its own thread.
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private["_thread"] = None
        return {**state, "__pydantic_private__": private}
