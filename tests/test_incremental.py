"""Incremental ingest: OCR-only figures are upgraded by a later run with vLLM up, changed files are replaced,
--prune and delete remove files, unchanged files cost no caption or embedding call."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from caprl_index.config import Settings
from caprl_index.pipeline import IngestOptions, ingest
from caprl_index.store import QdrantStore
from caprl_index.testing.index import all_points
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.texts = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def tokenizer(self):
        return self.inner.tokenizer()

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self.inner.embed(texts)


def _payloads(settings: Settings) -> list[dict]:
    return [p.payload for p in all_points(settings)]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", folder / "transit.pdf")
    return folder


def test_ocr_figures_are_captioned_when_vllm_comes_up(docs: Path, tmp_path: Path, embedder, fake_vllm) -> None:
    counting = CountingEmbedder(embedder)
    down = Settings(qdrant_path=tmp_path / "q", workers=1)  # CAPRL_VLLM_URL points at a closed port
    stats = ingest([docs], down, embedder=counting)
    assert stats.files_indexed == 1 and stats.captions_by_source.get("ocr", 0) >= 1
    assert any("OCR" in w or "ocr" in w for w in stats.warnings)
    ocr_figures = stats.captions_by_source["ocr"]
    embedded_first = counting.texts

    up = Settings(qdrant_path=tmp_path / "q", workers=1, vllm_url=[fake_vllm.url])
    stats = ingest([docs], up, embedder=counting)
    assert stats.files_indexed == 1 and stats.captions_by_source == {"vllm": ocr_figures}
    assert len(fake_vllm.chat_requests) == ocr_figures  # exactly the OCR figures, nothing else
    payloads = _payloads(up)
    figure_chunks = [p for p in payloads if p["kind"] != "text"]
    assert figure_chunks and all(p["caption_source"] == "vllm" for p in figure_chunks)
    # Page text did not change: only the new figure chunks were embedded.
    assert counting.texts - embedded_first == len(figure_chunks)

    before = counting.texts
    stats = ingest([docs], up, embedder=counting)
    assert stats.files_skipped == 1 and stats.files_indexed == 0
    assert counting.texts == before and len(fake_vllm.chat_requests) == ocr_figures


def test_changed_file_is_replaced_and_pruned_file_removed(docs: Path, tmp_path: Path, embedder) -> None:
    settings = Settings(qdrant_path=tmp_path / "q", workers=1, captioner="none")
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    ingest([docs], settings, embedder=embedder)
    old = {p["file_sha256"] for p in _payloads(settings) if p["file_name"] == "report.pdf"}

    (docs / "report.pdf").write_bytes((EXAMPLES / "solar-market-report-2024.pdf").read_bytes() + b"\n%v2\n")
    stats = ingest([docs], settings, embedder=embedder)
    assert stats.files_indexed == 1 and stats.files_skipped == 1
    new = {p["file_sha256"] for p in _payloads(settings) if p["file_name"] == "report.pdf"}
    assert len(new) == 1 and new != old  # only the new version remains

    (docs / "transit.pdf").unlink()
    stats = ingest([docs], settings, IngestOptions(prune=True), embedder=embedder)
    assert stats.files_pruned == 1
    assert {p["file_name"] for p in _payloads(settings)} == {"report.pdf"}
    assert set(QdrantStore(settings).records()) == {str(docs / "report.pdf")}


def test_text_only_then_figures_reingests(docs: Path, tmp_path: Path, embedder) -> None:
    text_only = Settings(qdrant_path=tmp_path / "q", workers=1, figures=False)
    stats = ingest([docs], text_only, embedder=embedder)
    assert stats.figures == 0 and {p["kind"] for p in _payloads(text_only)} == {"text"}
    full = Settings(qdrant_path=tmp_path / "q", workers=1, captioner="ocr")
    stats = ingest([docs], full, embedder=embedder)
    assert stats.files_indexed == 1 and stats.figures >= 1
    kinds = {p["kind"] for p in _payloads(full)}
    assert "text" in kinds and kinds & {"figure", "page"}


@pytest.mark.parametrize("figures", [True, False])  # the version covers page text too
def test_a_detection_upgrade_reingests_indexed_files(
    docs: Path, tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch, figures: bool
) -> None:
    import caprl_index.plan as plan

    settings = Settings(qdrant_path=tmp_path / "q", workers=1, captioner="ocr", figures=figures)
    assert ingest([docs], settings, embedder=embedder).files_indexed == 1
    assert ingest([docs], settings, embedder=embedder).files_indexed == 0  # unchanged: skipped
    monkeypatch.setattr(plan, "DETECTION_VERSION", plan.DETECTION_VERSION + 1)
    assert ingest([docs], settings, embedder=embedder).files_indexed == 1  # new regions: re-detected
    assert ingest([docs], settings, embedder=embedder).files_indexed == 0
