"""OCR: word boundaries restored in the recogniser's output, OCR configured through Settings only."""

from __future__ import annotations

from pathlib import Path

import pytest

from caprl_index.config import Settings
from caprl_index.sources import parse_pages, prepare
from caprl_index.sources.discover import source_file
from caprl_index.sources.ocr import ocr_image, raw_lines
from caprl_index.sources.ocr_words import restore_spaces
from tests.conftest import shared
from tests.test_figures import scan_pdf


def test_runs_from_real_documents_get_their_spaces_back() -> None:
    # What rapidocr returned on real slides and reports (the examples).
    assert restore_spaces("PAYMENTSLANDSCAPE") == "PAYMENTS LANDSCAPE"
    assert restore_spaces("oftrainsontime") == "of trains on time"
    assert restore_spaces("passengertrips") == "passenger trips"
    assert restore_spaces("Withtheincreasingdigitalpaymentspenetration,theshareof") == (
        "With the increasing digital payments penetration,the share of"
    )
    assert restore_spaces("numberofdebitcardusersinIndia") == "number of debit card users in India"


def test_numbers_units_and_words_that_are_whole_stay_intact() -> None:
    for kept in ("COVID-19 3.5GHz 10kg $1.2bn 27% Q3 4K", "Netflix NASA", "Revenue grew in 2023"):
        assert restore_spaces(kept) == kept


def test_names_acronyms_hashtags_and_handles_stay_one_term() -> None:
    # What the list alone made of real OCR (a Nepal district map, a tweet, an engine diagram): rare words.
    for kept in ("Kailali", "Humla", "Maddie", "HEGO", "#WednesdayWisdom", "@reuterspictures", "@Target"):
        assert restore_spaces(kept) == kept
    even = [10.0 * i for i in range(7)]
    assert restore_spaces("Kailali", even, 20.0) == "Kailali"
    wide = [*even[:4], *(x + 20.0 for x in even[4:])]  # a space the geometry shows still counts
    assert restore_spaces("Kailali", wide, 20.0) == "Kail ali"
    assert restore_spaces("HomeAway") == "Home Away"  # a case change inside: not a name


def test_the_recognisers_geometry_decides_where_the_list_cannot() -> None:
    # "nowhere" is a word; a wide step after "now" (a dropped space) makes it two.
    even = [10.0 * i for i in range(7)]
    gap = [*even[:3], *(x + 14.0 for x in even[3:])]
    assert restore_spaces("nowhere", even, 20.0) == "nowhere"
    assert restore_spaces("nowhere", gap, 20.0) == "now here"


@pytest.mark.shared
def test_ocr_of_a_real_report_page_keeps_word_boundaries() -> None:
    """Pew's body type at the scan budget: rapidocr runs "adultsusesocialnetworkingsitessuchas"."""
    import pymupdf

    from caprl_index.figures.crop import pixmap_to_pil

    path = shared("mmlongbench-dev", "documents", "PIP_Seniors-and-Tech-Use_040314.pdf")
    with pymupdf.open(path) as doc:
        pix = doc[5].get_pixmap(matrix=pymupdf.Matrix(1.44, 1.44), clip=pymupdf.Rect(60, 85, 370, 145))
    image = pixmap_to_pil(pix)
    raw = " ".join(line.text for line in raw_lines(image)).lower().split()
    text = " ".join(line.text for line in ocr_image(image)).lower().split()
    wanted = {"older", "adults", "use", "social", "networking", "sites", "such", "as"}
    assert not wanted <= set(raw)  # the recogniser ran them together ...
    assert wanted <= {w.strip(",.") for w in text}, text  # ... and they are words again


def test_ocr_off_in_settings_leaves_a_scan_without_text(tmp_path: Path) -> None:
    path = scan_pdf(tmp_path / "scan.pdf", "INVOICE 4711")
    for settings, expected in ((Settings(), True), (Settings(ocr=False), False)):
        doc = prepare(source_file(path), settings, tmp_path)
        (parsed,) = parse_pages(doc, 0, 1, settings)
        assert ("4711" in parsed.page.text) is expected
    assert Settings(captioner="none").figure_ocr is False and Settings(captioner="ocr").figure_ocr is True


def test_lines_are_recognised_one_at_a_time() -> None:
    """rapidocr pads each batch of 6 lines to its widest: one line per pass read the dev corpus's pages
    28% faster with a lower peak (ocr.REC_BATCH; benchmarks/ocr_words.py --rec-batch 6 compares)."""
    from caprl_index.sources.ocr import new_engine

    assert new_engine().text_rec.rec_batch_num == 1


def test_the_detector_never_gets_more_than_its_pixel_cap() -> None:
    """rapidocr scales a short side under 736 px up to 736: a 3000x360 strip (letterboxed to 2000x500)
    reached the detector as 2.2 Mpx and took the OCR process 750 MB above its resting size."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from caprl_index.sources.ocr import DET_MAX_PIXELS, new_engine

    engine = new_engine()
    detector = engine.text_det._detector
    shapes: list[tuple[int, ...]] = []
    real = detector.infer

    def spy(array: np.ndarray) -> object:
        shapes.append(array.shape)
        return real(array)

    detector.infer = spy
    font = ImageFont.load_default(size=40)
    strip = Image.new("RGB", (3000, 360), "white")
    draw = ImageDraw.Draw(strip)
    for y in (40, 150, 260):
        draw.text((30, y), "Quarterly revenue grew in Europe and Asia " * 3, fill="black", font=font)
    result, _ = engine(np.asarray(strip)[:, :, ::-1].copy())
    height, width = shapes[-1][2:]
    assert height * width <= DET_MAX_PIXELS * 1.1, shapes  # (the detector rounds sides to 32)
    assert sum("revenue" in r[1].lower() for r in result or ()) >= 2
    page = Image.new("RGB", (1000, 1100), "white")  # a page-sized image is given as it is
    ImageDraw.Draw(page).text((40, 40), "Installed capacity", fill="black", font=font)
    engine(np.asarray(page)[:, :, ::-1].copy())
    assert shapes[-1][2:] == (1088, 992) and detector.limit_side_len == 736


def test_one_text_detection_at_a_time_across_engines(monkeypatch) -> None:
    """Engines on four threads never run their detectors at once (two at once were the OCR process's
    peak), the heap is trimmed after each detection, and detection still returns each caller's result."""
    import threading
    import time

    import numpy as np

    from caprl_index.sources import ocr

    trims: list[int] = []
    monkeypatch.setattr("caprl_index.memory.trim_heap", lambda: trims.append(1) or True)
    active, most = [0], [0]
    count_lock = threading.Lock()

    class Detector:
        limit_side_len, limit_type = 736, "min"

        def __call__(self, img: np.ndarray) -> tuple[int, float]:
            with count_lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.02)
            with count_lock:
                active[0] -= 1
            return int(img[0, 0, 0]), 0.0

    results: list[tuple[int, int]] = []

    def engine(k: int) -> None:
        detector = ocr._CappedDetector(Detector())
        for _ in range(5):
            results.append((k, detector(np.full((800, 800, 3), k, np.uint8))[0]))

    threads = [threading.Thread(target=engine, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert sorted(results) == sorted((k, k) for k in range(4) for _ in range(5))
    assert len(trims) == 20
