"""RAG over a collection built by `caprl-index ingest`: CapRLRetriever + any OpenAI-compatible LLM.

    caprl-index ingest examples/docs
    python examples/rag_query_engine.py "How far did battery pack prices fall since 2015?" \
        --llm-url http://localhost:8000/v1 [--llm-model NAME] [-k 5] [--group-by-page] [--async]

Retrieval is the CLI's (hybrid dense + BM25, optionally one chunk per page); the LLM sees each chunk's file
name, page and figure type. The LLM is any OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1,
OpenAI); the key, if one is needed, comes from $OPENAI_API_KEY. Without --llm-model the server's first
listed model is used. When no LLM answers, the retrieved sources are printed and the script says so.
Index settings are the CLI's (CAPRL_* or caprl-index.toml).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore

from caprl_index.config import Settings
from caprl_index.llama import CapRLRetriever, OpenAICompatibleLLM


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


def print_sources(hits: list[NodeWithScore]) -> None:
    for n, hit in enumerate(hits, 1):
        m = hit.node.metadata
        kind = m["kind"] if m["kind"] == "text" else f"{m['kind']}:{m.get('figure_type')}"
        print(f"[{n}] {hit.score:.3f} {m['file_path']} page {m['page']} {kind}")
        print("    " + " ".join(hit.node.get_content().split())[:200])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question")
    parser.add_argument("--llm-url", default=os.environ.get("OPENAI_BASE_URL", "http://localhost:8000/v1"))
    parser.add_argument("--llm-model", default=None, help="served model name (default: the server's first)")
    parser.add_argument("-k", type=int, default=5, help="chunks to retrieve (default 5)")
    parser.add_argument("--group-by-page", action="store_true", help="one chunk per page")
    parser.add_argument("--async", dest="use_async", action="store_true", help="answer with aquery")
    args = parser.parse_args(argv)

    with CapRLRetriever(settings=Settings(), similarity_top_k=args.k, group_by_page=args.group_by_page) as retriever:
        llm, why = connect_llm(args.llm_url, args.llm_model)
        if llm is None:
            print(f"No LLM reachable: {why}.\nShowing the retrieved sources only (pass --llm-url / --llm-model):\n")
            print_sources(retriever.retrieve(args.question))
            return 0
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
        answer = asyncio.run(engine.aquery(args.question)) if args.use_async else engine.query(args.question)
        print(f"{answer}\n\nSources ({llm.model} at {args.llm_url}):")
        print_sources(answer.source_nodes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
