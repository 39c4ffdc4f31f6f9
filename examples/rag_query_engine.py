"""RAG over a collection built by `caprl-index ingest`: stock LlamaIndex query engine, any OpenAI-compatible LLM.

    caprl-index ingest examples/docs
    python examples/rag_query_engine.py "How far did battery pack prices fall since 2015?" \
        --llm-url http://localhost:8000/v1 [--llm-model NAME] [-k 5]

The answer is followed by its sources (file, page, figure box); the LLM sees each chunk's file name,
page and figure type. The LLM is any OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1, OpenAI);
the key, if one is needed, comes from $OPENAI_API_KEY. Without --llm-model the server's first listed model
is used. When no LLM answers, the retrieved sources are printed with their provenance and the script says
so. Store settings are the CLI's (CAPRL_* or caprl-index.toml).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from caprl_index.config import Settings
from caprl_index.reader import CapRLEmbedding


class OpenAICompatibleLLM(CustomLLM):
    """A completion LLM over any OpenAI-compatible /v1/chat/completions (llama-index-llms-openai-like's job,
    without the extra package)."""

    model: str = Field(description="Model name the server serves.")
    base_url: str = Field(description="OpenAI-compatible base URL ending in /v1.")
    max_tokens: int = Field(default=512)
    temperature: float = Field(default=0.1)
    context_window: int = Field(default=8192)
    _client: Any = PrivateAttr()

    def __init__(self, *, api_key: str | None = None, timeout: float = 120.0, **data: Any) -> None:
        super().__init__(**data)
        from openai import OpenAI

        self._client = OpenAI(base_url=self.base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=1)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.max_tokens, model_name=self.model)

    def _request(self, prompt: str, stream: bool) -> Any:
        return self._client.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            stream=stream,
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        reply = self._request(prompt, stream=False)
        return CompletionResponse(text=reply.choices[0].message.content or "", raw=reply.model_dump())

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = ""
        for event in self._request(prompt, stream=True):
            delta = (event.choices[0].delta.content or "") if event.choices else ""
            text += delta
            yield CompletionResponse(text=text, delta=delta)


def connect_llm(url: str, model: str | None) -> tuple[OpenAICompatibleLLM | None, str]:
    """The LLM when the server answers and serves `model` (default: its first model), else None and why."""
    from openai import OpenAI, OpenAIError

    key = os.environ.get("OPENAI_API_KEY")
    try:
        served = [m.id for m in OpenAI(base_url=url, api_key=key or "EMPTY", timeout=5, max_retries=0).models.list()]
    except OpenAIError as exc:
        return None, f"no OpenAI-compatible server answered at {url} ({type(exc).__name__}: {exc})"
    if not served or (model and model not in served):
        return None, f"{url} does not serve {model or 'any model'!r} (it lists: {', '.join(served) or 'nothing'})"
    return OpenAICompatibleLLM(model=model or served[0], base_url=url, api_key=key), ""


def open_index(settings: Settings) -> tuple[QdrantClient, VectorStoreIndex]:
    """The stock QdrantVectorStore over the CLI's collection, queried with the model that embedded it."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(url=settings.qdrant_url, api_key=key)
    elif settings.qdrant_path.exists():
        client = QdrantClient(path=str(settings.qdrant_path))
    else:
        sys.exit(f"no index at {settings.qdrant_path}: run `caprl-index ingest PATH` first, or set CAPRL_QDRANT_PATH")
    if not client.collection_exists(settings.collection):
        client.close()
        sys.exit(f"collection {settings.collection!r} not found: run `caprl-index ingest PATH` first")
    store = QdrantVectorStore(client=client, collection_name=settings.collection)
    return client, VectorStoreIndex.from_vector_store(store, embed_model=CapRLEmbedding(settings))


def print_sources(hits: list[NodeWithScore]) -> None:
    for n, hit in enumerate(hits, 1):
        m = hit.node.metadata
        box = f" bbox={[round(v) for v in m['bbox']]}" if m.get("bbox") else ""
        kind = m.get("kind") if m.get("kind") == "text" else f"{m.get('kind')}:{m.get('figure_type')}"
        print(f"[{n}] {hit.score:.3f} {m.get('file_path')} page {m.get('page')} {kind}{box}")
        print("    " + " ".join(hit.node.get_content().split())[:200])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question")
    parser.add_argument("--llm-url", default=os.environ.get("OPENAI_BASE_URL", "http://localhost:8000/v1"))
    parser.add_argument("--llm-model", default=None, help="served model name (default: the server's first)")
    parser.add_argument("-k", type=int, default=5, help="chunks to retrieve (default 5)")
    parser.add_argument("--collection", help="collection name (default: CAPRL_COLLECTION or 'caprl')")
    args = parser.parse_args(argv)

    settings = Settings(**({"collection": args.collection} if args.collection else {}))
    client, index = open_index(settings)
    try:
        retriever = index.as_retriever(similarity_top_k=args.k)
        llm, why = connect_llm(args.llm_url, args.llm_model)
        if llm is None:
            print(f"No LLM reachable: {why}.\nShowing the retrieved sources only (pass --llm-url / --llm-model):\n")
            print_sources(retriever.retrieve(args.question))
            return 0
        response = RetrieverQueryEngine.from_args(retriever, llm=llm).query(args.question)
        print(f"{response}\n\nSources ({llm.model} at {args.llm_url}):")
        print_sources(response.source_nodes)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
