"""The LlamaIndex examples run as users run them, against the loopback vLLM server and real indexes."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from qdrant_client import QdrantClient

from caprl_index.cli import main as cli
from caprl_index.testing.fake_vllm import FakeVLLM
from tests.conftest import ROOT
from tests.llama_support import REPORT, edge_copy, server_copy, settings_at

QUERY = "battery storage prices by year"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def index(embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example index (embedded) as the examples find it: through CAPRL_* like the CLI."""
    settings = edge_copy(tmp_path / "index", embedder)
    monkeypatch.setenv("CAPRL_QDRANT_PATH", str(settings.qdrant_path))
    monkeypatch.setenv("CAPRL_COLLECTION", settings.collection)
    return settings


def run(module: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert module.main(argv) == 0
    return capsys.readouterr().out


def test_retriever_example_prints_what_search_json_prints(index: Any, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["-k", "4", "--kind", "figure", "--pages", "2-", "--file", "solar*"]
    expected = json.loads(run_cli(["search", QUERY, "--json", *flags], capsys))
    retriever = example("retriever")
    assert json.loads(run(retriever, [QUERY, "--json", *flags], capsys)) == expected
    assert json.loads(run(retriever, [QUERY, "--json", "--async", *flags], capsys)) == expected
    out = run(retriever, [QUERY, "-k", "2", "--group-by-page"], capsys)
    assert "solar-market-report-2024.pdf p.3" in out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli(argv) == 0
    return capsys.readouterr().out


def test_eval_example_matches_caprl_index_eval(index: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = tmp_path / "queries.jsonl"
    rows = [
        {"question": QUERY, "file": str(REPORT), "page": 3},
        {"question": "market share of solar module manufacturers", "file": str(REPORT), "page": 4},
        {"question": "kilometres of new bike lanes", "file": "docs/city-transit-infographic.pdf", "page": 1},
        {"question": "net promoter score", "file": "docs/quarterly-review.pptx", "page": 5},
    ]
    queries.write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "docs").symlink_to(REPORT.parent)
    expected = json.loads(run_cli(["eval", str(queries), "--json"], capsys))
    assert expected["n"] == 4 and expected["mrr"] > 0
    evaluate = example("eval_retriever")
    assert json.loads(run(evaluate, [str(queries)], capsys)) == expected
    assert json.loads(run(evaluate, [str(queries), "--async"], capsys)) == expected


def test_rag_example_answers_with_an_openai_compatible_llm(index: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rag = example("rag_query_engine")
    with FakeVLLM(model="qwen-chat") as server:
        out = run(rag, [QUERY, "--llm-url", server.url, "-k", "3", "--group-by-page"], capsys)
        again = run(rag, [QUERY, "--llm-url", server.url, "-k", "3", "--async"], capsys)
        [first, _] = server.chat_requests
    assert "An answer from qwen-chat" in out and "Sources (qwen-chat" in out and "page 3" in out
    assert "An answer from qwen-chat" in again
    assert "page: 3" in first.prompt and "Battery" in first.prompt  # the retrieved context reached the model
    assert "file_sha256" not in first.prompt and "bbox" not in first.prompt
    nobody = run(rag, [QUERY, "--llm-url", "http://127.0.0.1:9/v1"], capsys)
    assert "No LLM reachable" in nobody and "page 3" in nobody


def test_multimodal_example_sends_the_chart_itself(index: Any, capsys: pytest.CaptureFixture[str]) -> None:
    multimodal = example("multimodal_query")
    with FakeVLLM(model="qwen-vl") as server:
        out = run(multimodal, [QUERY, "--llm-url", server.url, "--llm-model", "qwen-vl", "--figures-only"], capsys)
        requests = server.chat_requests
    assert requests and all(r.status == 200 and r.model == "qwen-vl" for r in requests)
    # The crops kept in the image store, read from their files when sent, are what the model was shown.
    crops = [Path(line.split("sent as image ")[1]) for line in out.splitlines() if "sent as image" in line]
    assert any("page 3 figure: sent as image" in line for line in out.splitlines())
    assert shown_images(requests) == {hashlib.sha256(c.read_bytes()).hexdigest() for c in crops}


def shown_images(requests: list[Any]) -> set[str]:
    """The sha256 of every image in the requests' messages (sent as base64 data URLs)."""
    out = set()
    for request in requests:
        for message in request.body["messages"]:
            for part in message["content"] if isinstance(message["content"], list) else []:
                if part["type"] == "image_url":
                    data = part["image_url"]["url"].split(",", 1)[1]
                    out.add(hashlib.sha256(base64.b64decode(data)).hexdigest())
    return out


def test_stock_store_example_dense_and_hybrid(embedder: Any, tmp_path: Path) -> None:
    stock = example("search_from_llamaindex")
    store = server_copy(tmp_path, embedder)
    store.close()
    from caprl_index.llama import CapRLEmbedding

    embed = CapRLEmbedding(embedder=embedder)
    client = QdrantClient(path=str(tmp_path / "server"))
    try:
        found = {}
        for hybrid in (False, True):
            vector_store = stock.stock_store("caprl", hybrid=hybrid, client=client)
            hits = stock.retriever(vector_store, embed, 3, None).retrieve("Terracell")
            found[hybrid] = [(h.node.metadata["file_name"], h.node.metadata["page"]) for h in hits]
            figures = stock.retriever(vector_store, embed, 3, "figure").retrieve(QUERY)
            assert figures and all(h.node.metadata["kind"] == "figure" for h in figures)
    finally:
        client.close()
    assert ("solar-market-report-2024.pdf", 4) in found[True]
    assert ("solar-market-report-2024.pdf", 4) not in found[False]
    with pytest.raises(SystemExit, match="CAPRL_QDRANT_URL"):
        stock.main(["Terracell"])


def test_pipeline_example_skips_what_it_has_seen(
    embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / REPORT.name).write_bytes(REPORT.read_bytes())
    settings = settings_at(tmp_path / "index")
    monkeypatch.setenv("CAPRL_QDRANT_PATH", str(settings.qdrant_path))
    monkeypatch.setenv("CAPRL_CAPTIONER", "none")
    pipeline = example("reader_pipeline")
    first = run(pipeline, [str(folder)], capsys)
    assert "documents ->" in first and " 0 nodes written" not in first
    assert "solar-market-report-2024.pdf page 3" in first
    second = run(pipeline, [str(folder)], capsys)
    assert "-> 0 new nodes" in second and "\n0 nodes written" in second
