"""`caption`, `doctor`, `delete` and `eval` through the CLI, against the loopback vLLM server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from caprl_index.cli import main
from caprl_index.testing.figures import image_bytes
from tests.conftest import EXAMPLES


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_caption_one_image_reports_model_latency_and_tokens(tmp_path: Path, fake_vllm, capsys) -> None:
    image = tmp_path / "chart.png"
    image.write_bytes(image_bytes(320, 200, seed=3))
    code, out, _ = run(capsys, "caption", str(image), "--vllm-url", fake_vllm.url, "--json")
    info = json.loads(out)
    assert code == 0 and info["source"] == "vllm" and info["model"] == "caprl"
    assert info["prompt_tokens"] > 0 and info["completion_tokens"] > 0 and info["latency_s"] >= 0
    assert info["caption"].strip()
    request = fake_vllm.chat_requests[-1]
    assert request.prompt == "Please describe this image in detail." and request.image_size == (320, 200)


def test_caption_with_server_down_is_an_error_naming_the_url(tmp_path: Path, capsys) -> None:
    image = tmp_path / "chart.png"
    image.write_bytes(image_bytes())
    code, _, err = run(capsys, "caption", str(image))
    assert code == 2 and "127.0.0.1" in err


def test_doctor_reports_each_component(fake_vllm, capsys) -> None:
    code, out, _ = run(capsys, "doctor", "--vllm-url", fake_vllm.url, "--json")
    checks = {c["name"].split()[0]: c for c in json.loads(out)}
    assert code == 0
    assert checks["vLLM"]["state"] == "ok" and "caprl" in checks["vLLM"]["detail"]
    assert checks["Qdrant"]["state"] == "ok" and checks["embedding"]["state"] == "ok"
    assert "384-d" in checks["embedding"]["detail"]


def test_doctor_fails_when_vllm_is_required_and_down(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPRL_CAPTIONER", "vllm")
    code, out, _ = run(capsys, "doctor")
    assert code == 2 and "FAIL" in out and "vLLM" in out


@pytest.mark.slow
def test_delete_and_eval(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs / "transit.pdf")
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0

    queries = tmp_path / "q" / "queries.jsonl"
    queries.parent.mkdir()
    rows = [
        {"question": "battery pack prices by year", "file": "../docs/report.pdf", "page": 3},
        {"question": "installations by region in gigawatts", "file": str(docs / "report.pdf"), "page": 2},
        {"question": "a question about nothing indexed at all", "file": "../docs/report.pdf", "page": 1},
    ]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, out, _ = run(capsys, "eval", str(queries), "--json")
    metrics = json.loads(out)
    assert code == 0 and set(metrics) == {"n", "recall@1", "recall@5", "recall@10", "mrr"}
    assert metrics["n"] == 3 and metrics["recall@10"] >= 2 / 3 and 0 < metrics["mrr"] <= 1

    code, out, _ = run(capsys, "delete", str(docs / "transit.pdf"))
    assert code == 0 and "transit.pdf" in out
    code, out, _ = run(capsys, "status", "--json")
    status = json.loads(out)
    assert status["files"] == 1
    code, out, _ = run(capsys, "search", "bike lanes", "--json")
    assert all(not h["file_path"].endswith("transit.pdf") for h in json.loads(out))


def test_missing_embedding_model_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model loads while workers already parse: its failure still ends the run cleanly, naming the fix."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs / "transit.pdf")
    monkeypatch.setenv("CAPRL_EMBED_MODEL", str(tmp_path / "no-such-model"))
    code, _, err = run(capsys, "ingest", str(docs), "--captioner", "none")
    assert code == 2
    assert "no-such-model" in err and "CAPRL_EMBED_MODEL" in err
    monkeypatch.delenv("CAPRL_EMBED_MODEL")
    code, out, _ = run(capsys, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["files"] == 0 and status["points"] == 0  # nothing half-indexed
