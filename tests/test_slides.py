"""Slide decks: LibreOffice conversion, the python-pptx fallback, native chart data, bad decks.

Decks are built here with python-pptx; LibreOffice runs for real (few, small conversions) and is
replaced by small shell scripts only to make it hang or fail on purpose.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pptx import Presentation
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
from pptx.util import Inches

from caprl_index.config import Settings
from caprl_index.errors import ConfigError, CorruptFile, EncryptedFile, UnsupportedFile
from caprl_index.models import SourceFile
from caprl_index.sources import parse_pages
from caprl_index.sources.base import PreparedDocument
from caprl_index.sources.discover import source_file
from caprl_index.sources.pptx_charts import ChartData, chart_text, parse_chart
from caprl_index.sources.pptx_native import parse_presentation, slide_charts
from caprl_index.sources.slides import NO_SOFFICE_WARNING, find_soffice, prepare_slides

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pptx"
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) not installed")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/pptx absent")

CHART_TEXT = (
    "Chart: Revenue by quarter (bar chart). Categories: Q1, Q2, Q3. "
    "Series Sales: 10, 20.5, 30. Series Costs: 7, 8.25, 9."
)


def _noise_png(size: tuple[int, int]) -> bytes:
    rng = random.Random(7)
    image = Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _flat_png(size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, "white")
    image.paste((30, 90, 200), (10, 10, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_deck(path: Path) -> Path:
    """Three slides: title + body + native bar chart; table + two pictures + notes; a hidden slide."""
    prs = Presentation()  # 10 x 7.5 in = 720 x 540 pt
    first = prs.slides.add_slide(prs.slide_layouts[1])
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text = "Revenue grew every quarter"
    data = CategoryChartData()
    data.categories = ["Q1", "Q2", "Q3"]
    data.add_series("Sales", (10, 20.5, 30))
    data.add_series("Costs", (7, 8.25, 9))
    frame = first.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(5), Inches(3), Inches(4), Inches(3), data)
    frame.chart.has_title = True
    frame.chart.chart_title.text_frame.text = "Revenue by quarter"

    second = prs.slides.add_slide(prs.slide_layouts[5])
    second.shapes.title.text = "Team and plan"
    table = second.shapes.add_table(2, 2, Inches(0.5), Inches(1.5), Inches(4), Inches(1)).table
    for (r, c), text in zip([(0, 0), (0, 1), (1, 0), (1, 1)], ["Region", "Lead", "North", "Ada"], strict=True):
        table.cell(r, c).text = text
    photo = second.shapes.add_picture(io.BytesIO(_noise_png((400, 300))), Inches(1), Inches(3), width=Inches(4))
    photo._element.nvPicPr.cNvPr.set("descr", "Noise photo of the team")
    second.shapes.add_picture(io.BytesIO(_flat_png((1200, 900))), Inches(6), Inches(3), width=Inches(3))
    second.notes_slide.notes_text_frame.text = "Mention the hiring freeze"

    hidden = prs.slides.add_slide(prs.slide_layouts[5])
    hidden.shapes.title.text = "Backup numbers"
    hidden._element.set("show", "0")
    prs.save(str(path))
    return path


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> SourceFile:
    return source_file(build_deck(tmp_path_factory.mktemp("deck") / "results deck.pptx"))


@pytest.fixture(scope="module")
def rendered(deck: SourceFile, tmp_path_factory: pytest.TempPathFactory) -> PreparedDocument:
    """The deck converted once by the real LibreOffice (the slowest step of this module)."""
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) not installed")
    return prepare_slides(deck, Settings(), tmp_path_factory.mktemp("work"), soffice=SOFFICE)


# --- native chart data ---------------------------------------------------------------------------


def test_chart_data_is_exact(deck: SourceFile) -> None:
    shape = next(s for s in Presentation(deck.path).slides[0].shapes if s.has_chart)
    chart = parse_chart(shape.chart.element)
    assert chart.title == "Revenue by quarter"
    [plot] = chart.plots
    assert plot.plot_type == "barChart"
    assert [(s.name, s.categories, s.values) for s in plot.series] == [
        ("Sales", ("Q1", "Q2", "Q3"), ("10", "20.5", "30")),
        ("Costs", ("Q1", "Q2", "Q3"), ("7", "8.25", "9")),
    ]
    assert chart_text(chart) == CHART_TEXT


# --- fallback: python-pptx without LibreOffice ---------------------------------------------------


def test_fallback_reads_text_tables_notes_and_charts(deck: SourceFile, tmp_path: Path) -> None:
    doc = prepare_slides(deck, Settings(), tmp_path, soffice=None)
    assert (doc.page_count, doc.format, doc.page_mode, doc.render_path) == (3, "slides", "slide", None)
    assert doc.warnings == (NO_SOFFICE_WARNING,)
    assert doc.pages is not None and len(doc.pages) == 3
    first, second, third = (p.page for p in doc.pages)
    assert (first.width, first.height) == (720.0, 540.0)
    assert first.text.splitlines() == ["Quarterly results", "Revenue grew every quarter"]
    assert first.extra_text == "" == doc.extra_text(0)  # the chart's data is its figure's text
    assert "Region | Lead\nNorth | Ada" in second.text
    assert second.text.startswith("Team and plan")
    assert second.extra_text == "Speaker notes: Mention the hiring freeze"
    assert third.text == "Backup numbers"  # hidden slides are indexed too: page N is slide N
    assert not list(tmp_path.iterdir())  # nothing converted, nothing written


def test_fallback_native_chart_is_a_chart_figure_with_exact_values(deck: SourceFile, tmp_path: Path) -> None:
    doc = prepare_slides(deck, Settings(), tmp_path, soffice=None)
    assert doc.pages is not None
    (chart,) = doc.pages[0].figures
    assert (chart.kind, chart.figure_type, chart.ocr_text) == ("figure", "chart", CHART_TEXT)
    assert chart.printed_caption == "Revenue by quarter"
    assert chart.bbox == pytest.approx((360.0, 216.0, 648.0, 432.0))  # 4 x 3 in at (5, 3)
    assert chart.context_text.startswith("Quarterly results")
    image = Image.open(io.BytesIO(chart.image))  # the data drawn as a table: something to caption and show
    assert chart.mime == "image/png" and image.width > 200 and image.height > 60


def test_charts_stay_page_text_without_figures(deck: SourceFile, tmp_path: Path) -> None:
    doc = prepare_slides(deck, Settings(figures=False), tmp_path, soffice=None)
    assert doc.pages is not None and doc.pages[0].figures == ()
    assert doc.pages[0].page.extra_text == CHART_TEXT


def test_fallback_pictures_become_figures(deck: SourceFile, tmp_path: Path) -> None:
    budget = 50_000
    doc = prepare_slides(deck, Settings(max_pixels=budget), tmp_path, soffice=None)
    assert doc.pages is not None
    photo, drawing = doc.pages[1].figures
    assert [f.region_index for f in (photo, drawing)] == [0, 1]
    assert (photo.kind, photo.figure_type, photo.mime) == ("figure", "photo", "image/jpeg")
    assert (drawing.figure_type, drawing.mime) == ("other", "image/png")
    assert photo.bbox == pytest.approx((72.0, 216.0, 360.0, 432.0))  # 1 in = 72 pt; 4 x 3 in at (1, 3)
    assert drawing.bbox == pytest.approx((432.0, 216.0, 648.0, 378.0))
    assert photo.printed_caption == "Noise photo of the team"
    assert photo.context_text.startswith("Team and plan")
    for figure in (photo, drawing):
        image = Image.open(io.BytesIO(figure.image))
        assert image.width * image.height <= budget
        assert figure.image_sha256 == hashlib.sha256(figure.image).hexdigest()
    assert Image.open(io.BytesIO(drawing.image)).size == (258, 193)  # 1200x900 scaled into the budget


def test_fallback_sends_small_pictures_unchanged(deck: SourceFile, tmp_path: Path) -> None:
    doc = prepare_slides(deck, Settings(), tmp_path, soffice=None)
    assert doc.pages is not None
    photo, drawing = doc.pages[1].figures
    assert (photo.figure_type, photo.mime, photo.image) == ("photo", "image/png", _noise_png((400, 300)))
    # 1200 x 900 is over the default budget of 1,003,520 px: re-encoded smaller.
    width, height = Image.open(io.BytesIO(drawing.image)).size
    assert drawing.mime == "image/png" and 0.99 * 1_003_520 < width * height <= 1_003_520
    assert photo.image_sha256 == hashlib.sha256(photo.image).hexdigest()


def test_fallback_maps_group_children_to_slide_points(tmp_path: Path) -> None:
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    group = slide.shapes.add_group_shape()
    group.shapes.add_picture(io.BytesIO(_noise_png((200, 200))), Inches(1), Inches(1), Inches(2), Inches(2))
    # Move the group to (4 in, 2 in) and shrink it to half size: children keep child coordinates.
    xfrm = group._element.grpSpPr.find("{http://schemas.openxmlformats.org/drawingml/2006/main}xfrm")
    off, ext = xfrm[0], xfrm[1]
    off.set("x", str(Inches(4))), off.set("y", str(Inches(2)))
    ext.set("cx", str(Inches(1))), ext.set("cy", str(Inches(1)))
    prs.save(str(tmp_path / "group.pptx"))
    [page] = parse_presentation(str(tmp_path / "group.pptx"), 100_000)
    assert page.figures[0].bbox == pytest.approx((288.0, 144.0, 360.0, 216.0))


def test_soffice_env_none_disables_rendering(monkeypatch: pytest.MonkeyPatch, deck: SourceFile, tmp_path: Path) -> None:
    monkeypatch.setenv("CAPRL_SOFFICE", "none")
    assert find_soffice(Settings().soffice) is None
    assert prepare_slides(deck, Settings(), tmp_path).warnings == (NO_SOFFICE_WARNING,)


def test_a_missing_soffice_is_a_configuration_error_not_a_corrupt_deck(deck: SourceFile, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CAPRL_SOFFICE='/no/soffice': no such program"):
        prepare_slides(deck, Settings(soffice="/no/soffice"), tmp_path)


@pytest.mark.parametrize("suffix", [".ppt", ".odp", ".key"])
def test_other_formats_need_libreoffice(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"old{suffix}"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    with pytest.raises(UnsupportedFile, match="install libreoffice-impress"):
        prepare_slides(source_file(path), Settings(), tmp_path, soffice=None)


# --- LibreOffice ---------------------------------------------------------------------------------


@needs_soffice
def test_soffice_renders_one_page_per_slide(rendered: PreparedDocument) -> None:
    import pymupdf

    assert (rendered.format, rendered.page_mode, rendered.warnings) == ("slides", "slide", ())
    assert rendered.page_count == 3  # the hidden slide is exported: page numbers are slide numbers
    assert rendered.page_extra_text == ("", "Speaker notes: Mention the hiring freeze", "")
    assert [len(c) for c in rendered.page_charts] == [1, 0, 0]
    assert rendered.page_charts[0][0].text == CHART_TEXT
    assert rendered.render_path is not None
    pdf = Path(rendered.render_path)
    with pymupdf.open(pdf) as doc:
        assert [doc[i].get_text().split("\n")[0] for i in (0, 2)] == ["Quarterly results", "Backup numbers"]
        assert doc[0].rect.width == pytest.approx(720, abs=1)
    profile = pdf.parent.parent / "lo-profile" / "user" / "registrymodifications.xcu"
    assert 'DisableMacrosExecution" oor:op="fuse"><value>true' in profile.read_text()


@needs_soffice
@pytest.mark.slow
def test_soffice_converts_odp(deck: SourceFile, tmp_path: Path) -> None:
    import pymupdf

    assert SOFFICE is not None
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation={(tmp_path / 'p').as_uri()}", "--headless", "--convert-to", "odp",
         "--outdir", str(tmp_path), deck.path],
        check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
    )  # fmt: skip
    odp = source_file(tmp_path / "results deck.odp")
    doc = prepare_slides(odp, Settings(), tmp_path / "work", soffice=SOFFICE)
    assert (doc.page_count, doc.page_extra_text, doc.page_mode) == (3, (), "slide")
    with pymupdf.open(doc.render_path) as pdf:
        assert pdf[0].get_text().startswith("Quarterly results")


def _fake_soffice(tmp_path: Path, body: str) -> str:
    script = tmp_path / "soffice"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_hung_soffice_is_killed_with_its_children(deck: SourceFile, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    fake = _fake_soffice(tmp_path, f"sleep 300 &\necho $! >> {pids}\necho $$ >> {pids}\nwait\n")
    started = time.monotonic()
    with pytest.raises(CorruptFile, match=r"did not finish converting in 1 s; raise CAPRL_SOFFICE_TIMEOUT") as info:
        prepare_slides(deck, Settings(soffice_timeout=1), tmp_path / "work", soffice=fake)
    assert info.value.path == deck.path
    assert time.monotonic() - started < 10
    children = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


def test_soffice_that_writes_nothing_is_a_clear_error(deck: SourceFile, tmp_path: Path) -> None:
    fake = _fake_soffice(tmp_path, "echo 'Error: source file could not be loaded'\nexit 0\n")
    with pytest.raises(CorruptFile, match="LibreOffice could not convert it: Error: source file could not be loaded"):
        prepare_slides(deck, Settings(), tmp_path / "work", soffice=fake)
    with pytest.raises(ConfigError, match="cannot start LibreOffice"):
        prepare_slides(deck, Settings(), tmp_path / "work", soffice=str(tmp_path / "missing-soffice"))


# --- bad decks -----------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> SourceFile:
    path.write_bytes(data)
    return source_file(path)


@pytest.mark.parametrize("soffice", [None, "/nonexistent/soffice"])
def test_corrupt_decks_are_refused_before_parsing(deck: SourceFile, tmp_path: Path, soffice: str | None) -> None:
    whole = Path(deck.path).read_bytes()
    cases = {
        "empty.pptx": (b"", "empty"),
        "truncated.pptx": (whole[: len(whole) // 2], "damaged zip package|not a zip package"),
        "noise.pptx": (os.urandom(4096), "not a zip package"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(CorruptFile, match=reason) as info:
            prepare_slides(_write(tmp_path / name, data), Settings(), tmp_path / "work", soffice=soffice)
        assert info.value.path == str(tmp_path / name)


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pptx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("ppt/media/zeros.bin", "w") as member:
            block = bytes(1 << 20)
            for _ in range(80):
                member.write(block)
    with pytest.raises(CorruptFile, match="zip bomb"):
        prepare_slides(source_file(path), Settings(), tmp_path / "work", soffice=SOFFICE)


def test_zip_that_is_not_a_deck(tmp_path: Path) -> None:
    path = tmp_path / "notes.pptx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CorruptFile, match="not a PowerPoint package"):
        prepare_slides(source_file(path), Settings(), tmp_path / "work", soffice=None)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(CorruptFile, match="python-pptx cannot read the deck"):
        prepare_slides(source_file(path), Settings(), tmp_path / "work", soffice=None)


def test_password_protected_deck(tmp_path: Path) -> None:
    # Office stores an encrypted .pptx as an OLE compound file holding an "EncryptedPackage" stream;
    # this is its directory entry name at a sector boundary (the cipher text does not matter here).
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1016) + "EncryptedPackage".encode("utf-16-le") + bytes(480)
    for soffice in (None, SOFFICE):
        with pytest.raises(EncryptedFile, match="password-protected"):
            prepare_slides(_write(tmp_path / "secret.pptx", data), Settings(), tmp_path / "work", soffice=soffice)


# --- golden: real decks --------------------------------------------------------------------------


def _ground_truth() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SHARED / "pptx_native_charts.jsonl").read_text().splitlines() if line]


@needs_shared
@pytest.mark.shared
def test_native_charts_match_ground_truth() -> None:
    rows = _ground_truth()
    found: list[tuple[str, int, ChartData]] = []
    for name in sorted({row["file"] for row in rows}):
        for number, slide in enumerate(Presentation(str(SHARED / name)).slides, 1):
            found.extend((name, number, chart) for chart in slide_charts(slide))
    assert len(found) == len(rows) == 52
    for (name, number, chart), row in zip(found, rows, strict=True):
        assert (name, number) == (row["file"], row["slide"])
        plots = [
            {"plot_type": p.plot_type, "series": [
                {"name": s.name, "categories": list(s.categories), "values": list(s.values)} for s in p.series
            ]}
            for p in chart.plots
        ]  # fmt: skip
        assert plots == row["plots"]
        # The ground truth joins the chart title with the axis titles; compare the words.
        title = " ".join([chart.title or "", *chart.axis_titles])
        assert "".join(title.split()) == "".join((row["title"] or "").split())


@needs_shared
@pytest.mark.shared
def test_real_decks_fallback_page_counts() -> None:
    manifest = (SHARED / "pptx_manifest.tsv").read_text().splitlines()
    header = manifest[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in manifest[1:]]
    for row in rows:
        if row["file"].startswith(("docling/", "markitdown/", "unstructured/")):
            pages = parse_presentation(str(SHARED / row["file"]), 200_000)
            assert len(pages) == int(row["slides"]), row["file"]
            words = sum(len(p.page.text.split()) for p in pages)
            assert words >= 0.8 * int(row["words"]), row["file"]


@needs_soffice
@needs_shared
@pytest.mark.shared
def test_real_chart_deck_with_soffice(tmp_path: Path) -> None:
    deck = source_file(SHARED / "docling" / "pptx_chart.pptx")
    doc = prepare_slides(deck, Settings(), tmp_path, soffice=SOFFICE)
    assert doc.page_count == 2
    assert doc.page_charts[0][0].text == (
        "Chart: Wild Duck Observations by Year (bar chart). Categories: 2019, 2020, 2021, 2022. "
        "Series Freshwater Ducks: 120, 130, 150, 175. Series Saltwater Ducks: 80, 95, 110, 130."
    )
    assert doc.page_charts[1][0].text == "Chart (3-D bar chart). Categories: Q1, Q2, Q3. Series 2026: 10, 20, 30."
    slide, chart = parse_pages(doc, 0, 1, Settings())[0].figures
    assert (slide.kind, slide.figure_type, chart.kind, chart.figure_type) == ("page", "slide", "figure", "chart")
    assert chart.bbox == pytest.approx((72.0, 115.2, 648.0, 460.8), abs=0.1)  # the chart's frame on the slide
    assert "Freshwater Ducks: 120, 130, 150, 175" in chart.ocr_text and chart.region_index == 1
    assert "Freshwater" not in slide.ocr_text  # the values live in the chart's point, not twice
