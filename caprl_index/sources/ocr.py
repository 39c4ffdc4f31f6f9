"""OCR for pixels without a text layer (scans, images, raster figures), with rapidocr-onnxruntime.

The engine is loaded lazily, once per process: parser workers only pay for it when they meet a scan.
It runs single-threaded because the pipeline already runs one parser per core.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from caprl_index.models import BBox

# Pixels beyond this are downscaled before OCR. Crops arrive within the caption budget (~1 Mpx) and
# are read as they are: shrinking them further saves little (recognition, per line, dominates) and
# loses small print.
OCR_MAX_PIXELS = 1_100_000
_MIN_SCORE = 0.5

ENABLED = True  # benchmarks switch OCR off to measure detection alone
_engine: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class OcrLine:
    """One recognised line; bbox in the pixel coordinates of the image given to `ocr_image`."""

    text: str
    bbox: BBox
    score: float


def _get_engine() -> Any:
    global _engine
    with _lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            # No angle classifier: upside-down text is rare in documents and it costs a pass per line.
            _engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, use_cls=False)
        return _engine


def _to_array(image: Any) -> tuple[Any, float]:
    """Convert a PIL image to an RGB array within OCR_MAX_PIXELS; return (array, scale applied)."""
    import numpy as np

    scale = 1.0
    pixels = image.width * image.height
    if pixels > OCR_MAX_PIXELS:
        scale = (OCR_MAX_PIXELS / pixels) ** 0.5
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    if image.mode != "RGB":
        image = image.convert("RGB")
    # rapidocr expects OpenCV's BGR order.
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1]), scale


def ocr_image(image: Any) -> list[OcrLine]:
    """Recognise text lines in a PIL image, in reading order (top to bottom, then left to right)."""
    if not ENABLED or image.width < 8 or image.height < 8:
        return []
    array, scale = _to_array(image)
    result, _ = _get_engine()(array)
    lines: list[OcrLine] = []
    for box, text, score in result or ():
        if float(score) < _MIN_SCORE or not str(text).strip():
            continue
        xs = [p[0] / scale for p in box]
        ys = [p[1] / scale for p in box]
        lines.append(OcrLine(str(text).strip(), (min(xs), min(ys), max(xs), max(ys)), float(score)))
    return _reading_order(lines)


def _reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Sort lines into rows (by vertical overlap), rows top to bottom, lines left to right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: ln.bbox[1]):
        mid = (line.bbox[1] + line.bbox[3]) / 2
        if rows and rows[-1][0].bbox[1] <= mid <= rows[-1][0].bbox[3]:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.bbox[0])]


def ocr_text(image: Any) -> str:
    """Recognised text of a PIL image, one line per text row."""
    return lines_to_text(ocr_image(image))


def lines_to_text(lines: list[OcrLine]) -> str:
    out: list[str] = []
    last_bottom = None
    for line in lines:
        if last_bottom is not None and line.bbox[1] < last_bottom - 2 and out:
            out[-1] += " " + line.text  # same row
        else:
            out.append(line.text)
        last_bottom = line.bbox[3]
    return "\n".join(out)
