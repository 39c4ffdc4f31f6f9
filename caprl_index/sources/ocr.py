"""OCR for pixels without a text layer (scans, images, raster figures, outlined labels), with rapidocr.

The engine is loaded lazily, once per process; parser workers send their images to the one OCR process
instead (ocr_service.py). An engine runs on one thread when there is one per parser (one per core), on
several when `Settings.ocr_engines` asks for fewer engines than parsers. Whether OCR runs at all is
decided by the callers from `Settings.ocr` (and `Settings.figure_ocr` inside figures).

The recogniser drops most spaces in Latin text; each line asks for its character boxes
(``return_word_box``) and gets its spaces back from them and a word list (ocr_words.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from caprl_index.models import BBox
from caprl_index.sources.ocr_words import restore_spaces

# Pixels beyond this are downscaled before OCR. Crops arrive within the caption budget (~1 Mpx) and
# are read as they are: shrinking them further saves little (recognition, per line, dominates) and
# loses small print.
OCR_MAX_PIXELS = 1_100_000
DET_MAX_PIXELS = 1_200_000  # what the text detector may be given after its own upscaling (_CappedDetector)
_MIN_SCORE = 0.5
# Text lines recognised per pass. rapidocr batches 6, each padded to the widest line of its batch: one
# line at a time read the dev corpus's pages 28% faster, with ~80 MB less at the OCR process's peak;
# word recall 0.971 -> 0.968 (`benchmarks/ocr_words.py --rec-batch 6` for rapidocr's batches).
REC_BATCH = 1

_engine: Any = None
_lock = threading.Lock()
# One text detection at a time in a process, whatever its engines: the detector's working set (~230 MB
# per megapixel) is the OCR process's peak, and two at once, each thread's freed memory then kept by its
# own malloc arena until the next trim, took it to ~780 MB (1,045 MB in the 30-page comparison below).
# Detection is ~0.3 s of a page's 0.7-3 s: the other engine recognises lines meanwhile, so the engines
# still overlap. 30 pages on 2 engines: 42.4 s and a 732 MB peak with this, 41.2 s and 1,045 MB without.
_detecting = threading.Lock()


@dataclass(frozen=True)
class OcrLine:
    """One recognised line; bbox in the pixel coordinates of the image given to `ocr_image`."""

    text: str
    bbox: BBox
    score: float
    centres: tuple[float, ...] = ()  # x of each character's centre (raw_lines only)


def _get_engine() -> Any:
    """This process's engine: the OCR process's stand-in in a parser worker (ocr_service.py), else its own."""
    global _engine
    with _lock:
        if _engine is None:
            from caprl_index.sources.ocr_service import remote_engine

            _engine = remote_engine() or new_engine()
        return _engine


def new_engine(threads: int = 1) -> Any:
    """A rapidocr engine on `threads` ONNX Runtime threads (one: its callers run one engine per core)."""
    from rapidocr_onnxruntime import RapidOCR

    # No angle classifier: upside-down text is rare in documents and it costs a pass per line.
    engine = RapidOCR(
        intra_op_num_threads=max(1, threads), inter_op_num_threads=1, use_cls=False, rec_batch_num=REC_BATCH
    )
    engine.text_det = _CappedDetector(engine.text_det)
    return engine


class _CappedDetector:
    """rapidocr's text detector with its input kept within DET_MAX_PIXELS.

    The detector scales an image whose short side is under 736 px up to 736; a strip (a banner, a table
    row, an axis) letterboxed by rapidocr to 2000x500 so reached 2.2 Mpx, and the detector's working set
    is ~330 MB per megapixel: one such crop took the OCR process 750 MB above its resting size. Here the
    short side is scaled up only as far as the pixel cap allows (never down: large pages are as before)."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self._limit = detector.limit_side_len

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)

    def __call__(self, img: Any) -> Any:
        height, width = img.shape[:2]
        limit = self._limit
        if self._detector.limit_type == "min" and min(height, width) < limit:
            # scaled by limit / short side: the area is height * width * (limit / short)^2 <= the cap
            fit = min(height, width) * (DET_MAX_PIXELS / max(1, height * width)) ** 0.5
            limit = max(32, min(limit, int(fit)))
        from caprl_index.memory import trim_heap

        with _detecting:
            self._detector.limit_side_len = limit  # one engine serves one thread at a time (see ocr_service)
            try:
                return self._detector(img)
            finally:
                self._detector.limit_side_len = self._limit
                trim_heap()  # before the next detection, which may be another thread's (another arena)


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
    return [_with_spaces(line) for line in raw_lines(image)]


def raw_lines(image: Any) -> list[OcrLine]:
    """`ocr_image` before word boundaries are restored: the recogniser's text as it comes, each line
    with the x centres of its characters (for restore_spaces and for benchmarks/ocr_words.py)."""
    if image.width < 8 or image.height < 8:
        return []
    array, scale = _to_array(image)
    result, _ = _get_engine()(array, return_word_box=True)
    lines: list[OcrLine] = []
    for item in result or ():
        box, text, score = item[0], str(item[1]), float(item[2])
        if score < _MIN_SCORE or not text.strip():
            continue
        xs = [p[0] / scale for p in box]
        ys = [p[1] / scale for p in box]
        bbox = (min(xs), min(ys), max(xs), max(ys))
        lines.append(OcrLine(text, bbox, score, _centres(item, text, scale, bbox)))
    return _reading_order(lines)


def _centres(item: Any, text: str, scale: float, bbox: BBox) -> tuple[float, ...]:
    """x centres of the characters of a horizontal line, from its character boxes (rapidocr sorts
    them left to right); empty when they do not match the text one to one (vertical or mixed
    Chinese lines)."""
    boxes = item[3] if len(item) > 3 else None
    if not boxes or len(boxes) != len(text) or (bbox[2] - bbox[0]) < (bbox[3] - bbox[1]):
        return ()
    return tuple((b[0][0] + b[1][0]) / 2 / scale for b in boxes)


def _with_spaces(line: OcrLine) -> OcrLine:
    height = line.bbox[3] - line.bbox[1]
    text = restore_spaces(line.text, line.centres or None, height)
    return OcrLine(" ".join(text.split()), line.bbox, line.score)


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
