"""End to end through the CLI: ingest examples/docs against a real loopback vLLM server, then search.

These run the production path: worker processes, the openai client over HTTP, the packaged embedding
model and the embedded Qdrant store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from caprl_index.cli import main
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

PAYLOAD_KEYS = {
    "text", "file_path", "file_name", "file_sha256", "page", "page_count", "kind", "figure_type", "bbox",
    "page_width", "page_height", "caption_source", "caption_model", "prompt_version", "image_sha256",
    "chunk_index", "_node_content", "_node_type", "doc_id", "document_id", "ref_doc_id",
}  # fmt: skip


SEARCH_JSON_KEYS = [
    "id", "score", "file_path", "file_name", "page", "page_width", "page_height", "kind", "figure_type", "bbox",
    "caption_source", "caption_model", "image_uri", "page_image_uri", "text",
]  # fmt: skip


def scroll_all(qdrant_path: Path, collection: str = "caprl") -> list[Any]:
    from caprl_index.config import Settings
    from caprl_index.testing.index import all_points

    return all_points(Settings(qdrant_path=qdrant_path, collection=collection))


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """examples/docs ingested once against the loopback vLLM server (module-wide: it takes a while)."""
    from caprl_index.testing.fake_vllm import FakeVLLM

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("e2e")
    qdrant = root / "qdrant"
    mp.setenv("CAPRL_QDRANT_PATH", str(qdrant))
    mp.setenv("CAPRL_CONFIG", str(root / "none.toml"))
    server = FakeVLLM(model="caprl").start()
    mp.setenv("CAPRL_VLLM_URL", server.url)
    try:
        code = main(["ingest", str(EXAMPLES)])
        first_requests = len(server.chat_requests)
        points = scroll_all(qdrant)
        code2 = main(["ingest", str(EXAMPLES)])
        yield {
            "code": code, "code2": code2, "points": points, "points_after_rerun": scroll_all(qdrant),
            "requests": first_requests, "requests_after_rerun": len(server.chat_requests),
            "server": server, "qdrant": qdrant,
        }  # fmt: skip
    finally:
        server.stop()
        mp.undo()


def test_ingest_succeeds_and_captions_every_figure_with_vllm(indexed: dict) -> None:
    assert indexed["code"] == 0
    figures = [p.payload for p in indexed["points"] if p.payload["kind"] in ("figure", "page")]
    assert len({(f["file_name"], f["page"], f["image_sha256"]) for f in figures}) >= 8
    assert all(f["caption_source"] == "vllm" and f["caption_model"] == "caprl" for f in figures)
    assert all(f["prompt_version"] for f in figures)
    # Each figure got its own caption: the one the server wrote for exactly its crop (the fake model puts
    # the id of the image it received in the caption; crops are sent as rendered, within the budget).
    sent = {r.image_sha256 for r in indexed["server"].chat_requests if r.outcome in ("ok", "length")}
    for f in figures:
        if f["chunk_index"] == 0:
            assert f["image_sha256"] in sent
            assert f"image id {f['image_sha256'][:12]}" in f["text"], f["text"][:200]


def test_every_point_carries_the_payload_contract(indexed: dict) -> None:
    files = {p.name for p in EXAMPLES.iterdir()}
    for point in indexed["points"]:
        p = point.payload
        assert set(p) >= PAYLOAD_KEYS, PAYLOAD_KEYS - set(p)
        assert p["file_name"] in files and Path(p["file_path"]).is_absolute()
        assert 1 <= p["page"] <= p["page_count"]
        assert p["kind"] in ("text", "figure", "page") and p["text"].strip()
        if p["bbox"] is not None:
            x0, y0, x1, y1 = p["bbox"]
            assert 0 <= x0 < x1 <= p["page_width"] + 1 and 0 <= y0 < y1 <= p["page_height"] + 1
        if p["kind"] == "text":
            assert p["figure_type"] is None and p["caption_source"] is None


def test_vector_charts_are_found_on_the_report_pages(indexed: dict) -> None:
    charts = {
        p.payload["page"]
        for p in indexed["points"]
        if p.payload["file_name"] == "solar-market-report-2024.pdf" and p.payload["kind"] == "figure"
    }
    assert {2, 3, 4, 5} <= charts


def test_slides_are_captioned_as_whole_pages(indexed: dict) -> None:
    slides = [p.payload for p in indexed["points"] if p.payload["file_name"] == "quarterly-review.pptx"]
    whole = {p["page"] for p in slides if p["kind"] == "page" and p["figure_type"] == "slide"}
    assert whole == {1, 2, 3, 4, 5}


def test_rerun_adds_no_points_and_makes_no_caption_calls(indexed: dict) -> None:
    assert indexed["code2"] == 0
    before = sorted(str(p.id) for p in indexed["points"])
    after = sorted(str(p.id) for p in indexed["points_after_rerun"])
    assert before == after
    assert indexed["requests_after_rerun"] == indexed["requests"]


@pytest.mark.parametrize(
    ("query", "file", "page"),
    [
        ("battery storage prices by year", "solar-market-report-2024.pdf", 3),
        ("solar installations by region", "solar-market-report-2024.pdf", 2),
        ("market share of solar module manufacturers", "solar-market-report-2024.pdf", 4),
        ("quarterly revenue per product line", "quarterly-review.pptx", 2),
    ],
)
def test_search_returns_the_charts_page_first(
    indexed: dict, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, query: str, file: str, page: int
) -> None:
    monkeypatch.setenv("CAPRL_QDRANT_PATH", str(indexed["qdrant"]))
    code, out, _ = run_cli(capsys, "search", query, "--json", "-k", "5")
    hits = json.loads(out)
    assert code == 0 and hits
    assert list(hits[0]) == SEARCH_JSON_KEYS  # the design's objects, in its order
    assert (Path(hits[0]["file_path"]).name, hits[0]["page"]) == (file, page)


def test_search_kind_filter_and_status(
    indexed: dict, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPRL_QDRANT_PATH", str(indexed["qdrant"]))
    _, out, _ = run_cli(capsys, "search", "battery prices", "--kind", "figure", "--json")
    assert json.loads(out) and all(h["kind"] == "figure" for h in json.loads(out))
    _, out, _ = run_cli(capsys, "search", "battery prices", "--file", "*.pptx", "--json")
    assert all(h["file_path"].endswith(".pptx") for h in json.loads(out))
    code, out, _ = run_cli(capsys, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["files"] == 3 and status["points"] == len(indexed["points"])
    assert status["caption_sources"].get("vllm", 0) >= 8 and not status["failed"]


def test_auto_without_server_falls_back_to_ocr_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs)
    code, _, err = run_cli(capsys, "ingest", str(docs))
    assert code == 0
    assert "warning" in err.lower() and "ocr" in err.lower()
    figures = [p.payload for p in scroll_all(tmp_path / "index" / "qdrant") if p.payload["kind"] != "text"]
    assert figures and all(f["caption_source"] == "ocr" for f in figures)
    # The infographic's words exist only as pixels: OCR must have read some of them.
    assert any("bike" in f["text"].lower() or "trips" in f["text"].lower() for f in figures)


def test_vllm_required_but_down_exits_2_naming_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    code, _, err = run_cli(capsys, "ingest", str(EXAMPLES / "solar-market-report-2024.pdf"), "--captioner", "vllm")
    assert code == 2
    assert os.environ["CAPRL_VLLM_URL"] in err


def test_bad_files_are_reported_and_good_ones_indexed(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs)
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 100)
    (docs / "empty.pdf").write_bytes(b"")
    notes = docs / "notes.txt"
    notes.write_text("not a document")
    code, _, err = run_cli(capsys, "ingest", str(docs), str(notes), "--captioner", "none")
    assert code == 1
    for name in ("corrupt.pdf", "empty.pdf", "notes.txt"):
        assert any(name in line and "FAILED" in line for line in err.splitlines()), (name, err)
    points = scroll_all(tmp_path / "index" / "qdrant")
    assert {p.payload["file_name"] for p in points} == {"solar-market-report-2024.pdf"}
    code, out, _ = run_cli(capsys, "status", "--json")
    failed = {Path(f["file_path"]).name: f["error"] for f in json.loads(out)["failed"]}
    assert {"corrupt.pdf", "empty.pdf"} <= set(failed) and all(failed.values())
