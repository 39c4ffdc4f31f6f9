"""OCR runs in one process shared by the parser workers: workers load no OCR (or any ONNX) model, and a
dead OCR process fails only the file being read while the run goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from caprl_index.config import Settings
from caprl_index.pipeline import ingest
from caprl_index.workers import SplitPool
from tests.pool_helpers import ocr_after_killing, parse_scan_and_report
from tests.test_figures import scan_pdf


def _in_pool(pool: SplitPool, fn, *args):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        return await pool.run(fn, *args)

    return asyncio.run(go())


def test_workers_send_ocr_to_the_ocr_process_and_import_no_models(tmp_path: Path) -> None:
    path = scan_pdf(tmp_path / "scan.pdf", "INVOICE 4711")
    pool = SplitPool(2)
    try:
        assert pool.ocr is not None and pool.ocr.pid
        text, heavy = _in_pool(pool, parse_scan_and_report, str(path), str(tmp_path))
    finally:
        pool.shutdown()
    assert "4711" in text  # the scan was OCR'd ...
    assert heavy == []  # ... by the OCR process: no onnxruntime, rapidocr, torch or layout model here


def test_without_the_ocr_process_each_worker_loads_its_own_engine(tmp_path: Path) -> None:
    path = scan_pdf(tmp_path / "scan.pdf", "INVOICE 4711")
    pool = SplitPool(2, ocr_process=False)
    try:
        assert pool.ocr is None
        text, heavy = _in_pool(pool, parse_scan_and_report, str(path), str(tmp_path))
    finally:
        pool.shutdown()
    assert "4711" in text and "rapidocr_onnxruntime" in heavy and "torch" not in heavy


def test_one_ocr_engine_serves_both_workers_with_the_cores_as_threads(tmp_path: Path) -> None:
    paths = [scan_pdf(tmp_path / f"scan{i}.pdf", f"INVOICE {4711 + i}") for i in range(2)]
    pool = SplitPool(2, ocr_engines=1)
    assert pool.ocr is not None and (pool.ocr.engines, pool.ocr.threads) == (1, 2)

    async def both():  # type: ignore[no-untyped-def]
        return await asyncio.gather(*(pool.run(parse_scan_and_report, str(p), str(tmp_path)) for p in paths))

    try:
        results = asyncio.run(both())
    finally:
        pool.shutdown()
    assert ["4711" in results[0][0], "4712" in results[1][0]] == [True, True]  # one engine, in turn
    assert results[0][1] == results[1][1] == []


def test_a_dead_ocr_process_fails_the_page_being_read_and_is_restarted() -> None:
    pool = SplitPool(2)
    try:
        assert pool.ocr is not None and pool.ocr.pid
        error, text = _in_pool(pool, ocr_after_killing, pool.ocr.pid)
    finally:
        pool.shutdown()
    assert "OCR process stopped" in error and "retries the file" in error
    assert "4711" in text


def test_the_ocr_process_stops_with_the_run(tmp_path: Path, embedder) -> None:
    import psutil

    from caprl_index.sources.ocr_service import live_pids

    (tmp_path / "docs").mkdir()
    scan_pdf(tmp_path / "docs" / "scan.pdf", "INVOICE 4711")
    stats = ingest([tmp_path / "docs"], Settings(qdrant_path=tmp_path / "q", workers=2, captioner="ocr"),
                   embedder=embedder)  # fmt: skip
    assert stats.files_indexed == 1 and not stats.failures
    assert not live_pids()
    assert not [c for c in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]


def test_closing_stops_the_ocr_process_without_waiting_for_the_supervisors_poll(monkeypatch) -> None:
    """close() used to join the supervisor first, which noticed only at its next poll (0-0.5 s at the end
    of every ingest). With the poll at 60 s, a close that waits for it would take about a minute."""
    import time

    import psutil

    from caprl_index.sources.ocr_service import OcrService, live_pids

    monkeypatch.setattr(OcrService, "poll_s", 60.0)
    service = OcrService(1)
    pid = service.pid
    time.sleep(0.5)  # the supervisor is inside its join now
    start = time.monotonic()
    service.close()
    assert time.monotonic() - start < 20
    assert pid not in live_pids() and not psutil.pid_exists(pid or 0)
