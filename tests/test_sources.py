"""prepare/parse_pages on generated PDFs, images, scans and broken inputs."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile, EncryptedFile, UnsupportedFile
from caprl_index.sources import parse_pages, prepare, sniff
from caprl_index.sources.discover import source_file
from tests.test_figures import bomb_png, photo_png, report_pdf, scan_pdf, text_image


@pytest.fixture
def settings() -> Settings:
    return Settings()


def _prepare(path: Path, settings: Settings, tmp_path: Path):
    return prepare(source_file(path), settings, tmp_path)


def test_pdf_pages_text_blocks_and_pickling(tmp_path: Path, settings: Settings) -> None:
    doc = _prepare(report_pdf(tmp_path / "report.pdf"), settings, tmp_path)
    assert (doc.format, doc.page_mode, doc.page_count) == ("pdf", "document", 3)
    pages = parse_pages(pickle.loads(pickle.dumps(doc)), 0, 3, settings)
    assert [p.page.number for p in pages] == [1, 2, 3]
    first = pages[0].page
    assert (first.width, first.height) == (612, 792)
    assert first.text.startswith("Quarterly results improved") and not first.scanned
    assert first.blocks and all(0 <= b.bbox[0] < b.bbox[2] <= 612 for b in first.blocks)
    assert pickle.loads(pickle.dumps(pages)) == pages


LIGATURE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # has the ﬁ and ﬀ glyphs


@pytest.mark.skipif(not LIGATURE_FONT.exists(), reason="DejaVu Sans is not installed")
def test_ligatures_are_expanded_in_page_text(tmp_path: Path, settings: Settings) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_font(fontname="dejavu", fontfile=str(LIGATURE_FONT))
    page.insert_text((72, 100), "The \ufb01eld di\ufb00ers by region.", fontname="dejavu", fontsize=12)
    doc.save(tmp_path / "ligatures.pdf")
    parsed = parse_pages(_prepare(tmp_path / "ligatures.pdf", settings, tmp_path), 0, 1, settings)[0]
    assert "The field differs by region." in parsed.page.text  # BM25 and the tokenizer see real words


def test_page_ranges_are_independent(tmp_path: Path, settings: Settings) -> None:
    doc = _prepare(report_pdf(tmp_path / "report.pdf"), settings, tmp_path)
    together = parse_pages(doc, 0, 3, settings)
    apart = parse_pages(doc, 0, 1, settings) + parse_pages(doc, 1, 3, settings)
    assert together == apart  # region ids and dedupe do not depend on how pages are split among workers
    assert parse_pages(doc, 2, 10, settings) == together[2:]


def test_no_figures_setting_skips_detection(tmp_path: Path) -> None:
    settings = Settings(figures=False)
    doc = _prepare(report_pdf(tmp_path / "report.pdf"), settings, tmp_path)
    assert all(not p.figures for p in parse_pages(doc, 0, 3, settings))


def test_scanned_page_gets_ocr_text_and_a_page_figure(tmp_path: Path, settings: Settings) -> None:
    doc = _prepare(scan_pdf(tmp_path / "scan.pdf", "INVOICE 4711"), settings, tmp_path)
    (parsed,) = parse_pages(doc, 0, 1, settings)
    assert parsed.page.scanned and "4711" in parsed.page.text
    (figure,) = parsed.figures
    assert figure.kind == "page" and figure.bbox == (0, 0, 612, 792)
    assert "4711" in figure.ocr_text


def test_image_file_is_one_page_with_ocr(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "note.png"
    text_image("TOTAL 1234").save(path)
    doc = _prepare(path, settings, tmp_path)
    assert (doc.format, doc.page_count) == ("image", 1)
    (parsed,) = parse_pages(doc, 0, 1, settings)
    assert parsed.page.scanned and "1234" in parsed.page.text
    (figure,) = parsed.figures
    assert figure.kind == "page" and figure.mime == "image/png" and figure.figure_type != "photo"
    assert (parsed.page.width, parsed.page.height) == (900, 300)


def test_photo_image_is_jpeg_within_budget(tmp_path: Path) -> None:
    settings = Settings(max_pixels=100_000)
    path = tmp_path / "photo.jpg"
    Image.open(__import__("io").BytesIO(photo_png((1200, 800)))).save(path, quality=90)
    doc = _prepare(path, settings, tmp_path)
    (figure,) = parse_pages(doc, 0, 1, settings)[0].figures
    assert figure.figure_type == "photo" and figure.mime == "image/jpeg"
    with Image.open(__import__("io").BytesIO(figure.image)) as img:
        assert img.width * img.height <= 100_000


def test_multi_frame_tiff_is_one_page_per_frame(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "stack.tiff"
    frames = [Image.new("RGB", (200, 100), colour) for colour in ("red", "green", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    doc = _prepare(path, settings, tmp_path)
    assert doc.page_count == 3
    pages = parse_pages(doc, 1, 3, settings)
    assert [p.page.number for p in pages] == [2, 3]
    assert pages[0].figures[0].image_sha256 != pages[1].figures[0].image_sha256


def test_webp_image(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "pic.webp"
    Image.new("RGB", (64, 48), "orange").save(path)
    assert _prepare(path, settings, tmp_path).page_count == 1


def test_sniff() -> None:
    assert sniff(b"%PDF-1.7\n") == "pdf"
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "image"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image"
    assert sniff(b"PK\x03\x04") == "zip"
    assert sniff(b"hello") is None


# --- bad inputs -------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(CorruptFile, match="empty"):
        _prepare(path, settings, tmp_path)


def test_garbage_pdf(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "garbage.pdf"
    path.write_bytes(b"this is not a pdf at all\n" * 50)
    with pytest.raises(CorruptFile, match=r"garbage\.pdf"):
        _prepare(path, settings, tmp_path)


def test_truncated_pdf(tmp_path: Path, settings: Settings) -> None:
    whole = report_pdf(tmp_path / "whole.pdf").read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(whole[:400])
    with pytest.raises(CorruptFile):
        _prepare(path, settings, tmp_path)


def test_damaged_but_repairable_pdf_warns(tmp_path: Path, settings: Settings) -> None:
    whole = report_pdf(tmp_path / "whole.pdf").read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(whole[: len(whole) - 200])  # xref table and trailer gone: MuPDF rebuilds them
    doc = _prepare(path, settings, tmp_path)
    assert any("repaired" in w for w in doc.warnings)
    assert parse_pages(doc, 0, 1, settings)[0].page.text


def test_zero_page_pdf(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "nopages.pdf"
    path.write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
        b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    with pytest.raises(CorruptFile, match="no pages"):
        _prepare(path, settings, tmp_path)


def test_encrypted_pdf(tmp_path: Path, settings: Settings) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret")
    locked = tmp_path / "locked.pdf"
    doc.save(locked, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    with pytest.raises(EncryptedFile, match="password"):
        _prepare(locked, settings, tmp_path)


def test_owner_password_only_pdf_opens(tmp_path: Path, settings: Settings) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "readable by anyone")
    path = tmp_path / "owner.pdf"
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="")
    prepared = _prepare(path, settings, tmp_path)
    assert "readable" in parse_pages(prepared, 0, 1, settings)[0].page.text


def test_png_named_pdf_is_read_as_image(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "really-a-png.pdf"
    Image.new("RGB", (50, 40), "green").save(path, format="PNG")
    doc = _prepare(path, settings, tmp_path)
    assert doc.format == "image" and any("named .pdf" in w for w in doc.warnings)
    assert parse_pages(doc, 0, 1, settings)[0].page.width == 50


def test_pdf_named_png_is_read_as_pdf(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "really-a-pdf.png"
    path.write_bytes(report_pdf(tmp_path / "r.pdf").read_bytes())
    doc = _prepare(path, settings, tmp_path)
    assert doc.format == "pdf" and doc.page_count == 3 and doc.warnings


def test_zip_named_pdf_is_unsupported(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "deck.pdf"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ppt/presentation.xml", "<p/>")
    with pytest.raises(UnsupportedFile, match="rename"):
        _prepare(path, settings, tmp_path)


def test_unsupported_extension(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "notes.docx"
    path.write_bytes(b"PK\x03\x04whatever")
    with pytest.raises(UnsupportedFile, match=r"\.docx"):
        _prepare(path, settings, tmp_path)


def test_file_over_size_limit(tmp_path: Path) -> None:
    path = report_pdf(tmp_path / "big.pdf")
    with pytest.raises(CorruptFile, match="max_file_mb"):
        _prepare(path, Settings(max_file_mb=0.001), tmp_path)


def test_decompression_bomb_is_refused(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(CorruptFile, match="decompression bomb"):
        _prepare(bomb_png(tmp_path / "bomb.png"), settings, tmp_path)


def test_corrupt_image(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    with pytest.raises(CorruptFile):
        _prepare(path, settings, tmp_path)


def test_slides_pdf_pages_are_whole_slide_figures(tmp_path: Path, settings: Settings) -> None:
    """A deck converted to PDF (by the slides module) is parsed here with page_mode="slide"."""
    from caprl_index.sources.base import PreparedDocument

    deck = pymupdf.open()
    for title in ("Quarterly review", "Sales by region"):
        page = deck.new_page(width=720, height=405)
        page.insert_text((40, 60), title, fontsize=28)
        page.insert_text((40, 120), "Bullet point with details", fontsize=14)
    path = tmp_path / "deck.pdf"
    deck.save(path)
    doc = PreparedDocument(
        file=source_file(path),
        page_count=2,
        format="slides",
        page_mode="slide",
        render_path=str(path),
        page_extra_text=("", "Chart: North 12, South 17"),
    )
    first, second = parse_pages(doc, 0, 2, settings)
    assert [f.kind for f in first.figures] == ["page"] and first.figures[0].figure_type == "slide"
    assert first.figures[0].printed_caption == "Quarterly review"
    assert first.figures[0].bbox == (0, 0, 720, 405) and not first.page.scanned
    assert second.page.extra_text == "Chart: North 12, South 17"
    assert "North 12" in second.figures[0].ocr_text and "Sales by region" in second.page.text


def test_precomputed_slide_pages_are_sliced(tmp_path: Path, settings: Settings) -> None:
    from caprl_index.models import Page, ParsedPage
    from caprl_index.sources.base import PreparedDocument

    pages = tuple(ParsedPage(Page(n, 720, 405, f"slide {n}")) for n in (1, 2, 3))
    path = tmp_path / "x.pptx"
    path.write_bytes(b"PK\x03\x04")
    doc = PreparedDocument(file=source_file(path), page_count=3, format="slides", page_mode="slide", pages=pages)
    assert parse_pages(doc, 1, 3, settings) == list(pages[1:])


def test_picture_page_with_text_layer_is_captioned_whole(tmp_path: Path, settings: Settings) -> None:
    """A page drawn over one page-sized picture (scan + OCR layer, designed page)."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_image(page.rect, stream=photo_png((612, 792)))
    page.insert_text((72, 100), "Annual report 2024, text layer over a picture", fontsize=14)
    path = tmp_path / "backdrop.pdf"
    doc.save(path)
    (parsed,) = parse_pages(_prepare(path, settings, tmp_path), 0, 1, settings)
    assert not parsed.page.scanned and "Annual report 2024" in parsed.page.text
    (figure,) = parsed.figures
    assert figure.kind == "page" and figure.figure_type == "photo" and "Annual report" in figure.ocr_text
