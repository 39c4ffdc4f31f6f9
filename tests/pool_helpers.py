"""Functions for tests/test_pipeline_pool.py that must be importable in spawned worker processes."""

from __future__ import annotations

import os
import time

from caprl_index.models import SourceFile


def die_if_hostile(file: SourceFile) -> str:
    """Stands in for a native crash of the PDF library on a hostile file."""
    if "hostile" in file.path:
        os._exit(139)
    time.sleep(0.5)  # be in flight when the other task kills its worker
    return file.path


def parse_scan_and_report(path: str, workdir: str) -> tuple[str, list[str]]:
    """Parse a scanned PDF in a worker; its OCR text and the heavy modules this worker has imported."""
    import sys
    from pathlib import Path

    from caprl_index.config import Settings
    from caprl_index.sources import parse_pages, prepare
    from caprl_index.sources.discover import source_file

    settings = Settings()
    doc = prepare(source_file(Path(path)), settings, Path(workdir))
    (parsed,) = parse_pages(doc, 0, 1, settings)
    heavy = ("torch", "onnxruntime", "rapidocr_onnxruntime", "pymupdf.layout", "pymupdf4llm", "sentence_transformers")
    return parsed.page.text, [m for m in heavy if sys.modules.get(m) is not None]


def ocr_after_killing(ocr_pid: int) -> tuple[str, str]:
    """Kill the OCR process, then OCR twice: the first call fails (its page's file fails), the second is
    served by the restarted process. Returns (error of the first, text of the second)."""
    import signal

    from PIL import Image, ImageDraw

    from caprl_index.sources.ocr import ocr_text
    from caprl_index.sources.ocr_service import OcrUnavailable

    image = Image.new("RGB", (480, 120), "white")
    ImageDraw.Draw(image).text((20, 40), "INVOICE 4711", fill="black", font_size=40)
    ocr_text(image)  # connected to the first OCR process
    os.kill(ocr_pid, signal.SIGKILL)
    time.sleep(0.3)
    try:
        ocr_text(image)
        error = ""
    except OcrUnavailable as exc:
        error = str(exc)
    return error, ocr_text(image)


class _TeardownMarker:
    """Writes into its (empty) file when the interpreter tears its modules down, and with them this object.
    What `__del__` needs is bound now: module globals and builtins may be gone by then."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    def __del__(self, write=os.write) -> None:
        write(self.fd, b"torn down")


_kept: list[_TeardownMarker] = []


def mark_teardown(path: str) -> int:
    """Keep an object in this worker that writes into `path` if the worker's interpreter is torn down."""
    _kept.append(_TeardownMarker(path))
    return os.getpid()
