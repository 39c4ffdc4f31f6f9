"""Ask a vision model about the charts themselves: figure nodes reach the LLM as images, not only as text.

    caprl-index ingest examples/docs
    python examples/multimodal_query.py "In which year did battery pack prices rise?" \
        --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-VL-7B-Instruct [-k 4]

CapRLRetriever returns figures whose crop is kept (CAPRL_KEEP_IMAGES, the default) as `FigureNode`s, and
`RetrieverQueryEngine(multimodal=True)` sends each as an image block next to the text of the other hits;
`OpenAICompatibleLLM` turns image blocks into the OpenAI protocol's data URLs. Any OpenAI-compatible server
with a vision model works: vLLM (`vllm serve Qwen/Qwen2.5-VL-7B-Instruct`), llama.cpp with an mmproj,
Ollama's /v1. Index settings are the CLI's (CAPRL_* or caprl-index.toml).
"""

from __future__ import annotations

import argparse
import os

from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from caprl_index.config import Settings
from caprl_index.llama import CapRLRetriever, FigureNode, OpenAICompatibleLLM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question")
    parser.add_argument("--llm-url", default=os.environ.get("OPENAI_BASE_URL", "http://localhost:8000/v1"))
    parser.add_argument("--llm-model", required=True, help="a vision model the server serves")
    parser.add_argument("-k", type=int, default=4, help="chunks to retrieve (default 4)")
    parser.add_argument("--figures-only", action="store_true", help="retrieve figures and slides only")
    args = parser.parse_args(argv)

    kinds = MetadataFilter(key="kind", value=["figure", "page"], operator=FilterOperator.IN)
    filters = MetadataFilters(filters=[kinds]) if args.figures_only else None
    llm = OpenAICompatibleLLM(model=args.llm_model, base_url=args.llm_url, api_key=os.environ.get("OPENAI_API_KEY"))
    with CapRLRetriever(settings=Settings(), similarity_top_k=args.k, filters=filters) as retriever:
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm, multimodal=True)
        answer = engine.query(args.question)
    print(f"{answer}\n\nSources:")
    for hit in answer.source_nodes:
        m = hit.node.metadata
        sent = f"image {hit.node.image_path}" if isinstance(hit.node, FigureNode) else "text"
        print(f"  {hit.score:.3f} {m['file_name']} page {m['page']} {m['kind']}: sent as {sent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
