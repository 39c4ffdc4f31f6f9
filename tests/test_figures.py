"""Figure detection on generated pages and on real pages of ../shared/data (skipped when absent)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from caprl_index.config import Settings
from caprl_index.figures import extract, find_regions, geometry, page_figures
from caprl_index.figures.crop import encode_pixmap, render_region, zoom_for
from caprl_index.models import Figure
from caprl_index.sources import parse_pages, prepare
from caprl_index.sources.discover import source_file
from caprl_index.sources.pdf import page_regions

# --- small documents built here (also used by test_sources.py) ---------------------------------
LOREM = (
    "Quarterly results improved across every region. Revenue grew faster than costs, and the "
    "operating margin widened for the third year in a row. "
) * 3


def vector_chart_pdf() -> bytes:
    """A one-page PDF holding a matplotlib bar chart as vector drawings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["North", "South", "East", "West"], [12, 17, 9, 14], color=["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"])
    ax.set_ylabel("Revenue (M$)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    plt.close(fig)
    return buffer.getvalue()


def outlined_chart_pdf() -> bytes:
    """A bar chart whose labels are drawn as outlines (filled glyph shapes, no text layer), as
    exporters write them with "convert text to outlines"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    fig, ax = plt.subplots(figsize=(4, 3))
    fig.subplots_adjust(bottom=0.25)
    ax.bar(range(4), [12, 17, 9, 14], color="#1f77b4")
    ax.tick_params(labelbottom=False, labelleft=False)
    points = Affine2D().scale(1 / 72) + fig.dpi_scale_trans  # glyph coordinates in points
    for i, label in enumerate(("North", "South", "East", "West")):
        x = 40.0 + 66 * i
        for letter in label:  # one path per glyph, as exporters write outlined text
            glyph = TextPath((x, 30), letter, size=13)
            fig.add_artist(PathPatch(glyph, transform=points, color="black", lw=0))
            x += glyph.get_extents().width + 1.5
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    plt.close(fig)
    return buffer.getvalue()


def logo_png() -> bytes:
    image = Image.new("RGB", (120, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, 110, 110), fill=(200, 30, 30))
    return _png(image)


def photo_png(size: tuple[int, int] = (480, 320)) -> bytes:
    """A photo-like picture: smooth gradients plus noise, many colours, no white."""
    import numpy as np

    rng = np.random.default_rng(7)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    base = np.concatenate([80 + 120 * x + 0 * y, 60 + 150 * y + 0 * x, 140 - 90 * x * y], axis=2)
    noise = rng.normal(0, 25, (h, w, 3))
    return _png(Image.fromarray(np.clip(base + noise, 0, 230).astype("uint8")))


def text_image(text: str, size: tuple[int, int] = (900, 300)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 100), text, fill="black", font=ImageFont.load_default(size=64))
    return image


def report_pdf(path: Path, pages: int = 3) -> Path:
    """A report: body text on every page, a repeated logo, a vector chart with a caption on page 1,
    a photo on page 2, a ruled table on page 3."""
    doc = pymupdf.open()
    chart = pymupdf.open(stream=vector_chart_pdf(), filetype="pdf")
    logo = logo_png()
    for number in range(pages):
        page = doc.new_page(width=612, height=792)
        page.insert_image(pymupdf.Rect(530, 20, 580, 70), stream=logo)  # furniture: on every page
        page.insert_textbox(pymupdf.Rect(72, 90, 540, 200), LOREM, fontsize=10)
        if number == 0:
            page.show_pdf_page(pymupdf.Rect(120, 220, 480, 490), chart, 0)
            page.insert_text((120, 510), "Figure 1: Revenue by region, 2024.", fontsize=10)
        elif number == 1:
            page.insert_image(pymupdf.Rect(150, 230, 450, 430), stream=photo_png())
            page.insert_text((150, 450), "Figure 2: The new headquarters.", fontsize=10)
        else:
            _ruled_table(page)
        page.insert_textbox(pymupdf.Rect(72, 560, 540, 700), LOREM, fontsize=10)
    doc.save(path)
    return path


def _ruled_table(page: pymupdf.Page) -> None:
    for row in range(6):
        y = 240 + row * 20
        page.draw_line((72, y), (540, y), width=0.5)
        for col, x in enumerate((80, 250, 400)):
            page.insert_text((x, y + 14), f"cell {row}.{col}  {1000 + row * 37 + col}", fontsize=9)


def scan_pdf(path: Path, text: str) -> Path:
    """A page that is only a picture of text: what a scanner makes."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    image = Image.new("RGB", (1224, 1584), "white")
    ImageDraw.Draw(image).text((120, 300), text, fill="black", font=ImageFont.load_default(size=90))
    page.insert_image(page.rect, stream=_png(image))
    doc.save(path)
    return path


def bomb_png(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A PNG whose header claims 1.6 G pixels (the data is never reached)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> list:
    folder = tmp_path_factory.mktemp("report")
    settings = Settings()
    doc = prepare(source_file(report_pdf(folder / "report.pdf")), settings, folder)
    return parse_pages(doc, 0, doc.page_count, settings)


def _size(figure: Figure) -> tuple[int, int]:
    with Image.open(io.BytesIO(figure.image)) as img:
        return img.size


def test_vector_chart_found_with_its_caption_and_not_the_body_text(report: list) -> None:
    (chart,) = report[0].figures
    assert chart.kind == "figure" and chart.figure_type == "chart"
    # placed at (120, 220, 480, 490), caption line at y 500-513, body text above 200 and below 560:
    # the box holds the axes, labels and the caption, not the body text around it
    x0, y0, x1, y1 = chart.bbox
    assert 100 <= x0 <= 180 and 215 <= y0 <= 260 and 430 <= x1 <= 485 and 510 <= y1 <= 520
    assert chart.printed_caption.startswith("Figure 1: Revenue by region")
    assert "North" in chart.ocr_text and "Revenue" in chart.ocr_text  # the drawing's own text layer
    assert "Figure 1" not in chart.ocr_text  # the caption is not counted twice
    assert "Quarterly results" in chart.context_text
    assert chart.mime == "image/png" and chart.image.startswith(b"\x89PNG")
    w, h = _size(chart)
    assert w * h <= Settings().max_pixels and w * h > 0.8 * Settings().max_pixels / 3.0**2


def test_photo_found_as_jpeg(report: list) -> None:
    (photo,) = report[1].figures
    assert photo.figure_type == "photo" and photo.mime == "image/jpeg"
    assert geometry.inside_fraction((150, 230, 450, 430), photo.bbox) > 0.95
    assert photo.printed_caption.startswith("Figure 2")


def test_repeated_logo_and_ruled_table_are_not_figures(report: list) -> None:
    assert report[2].figures == ()  # the table page: only the logo (furniture) and rules
    for parsed in report:
        assert all(f.bbox is None or f.bbox[0] < 520 for f in parsed.figures)  # never the logo corner


def test_region_index_and_hash_are_stable(report: list, tmp_path: Path) -> None:
    settings = Settings()
    doc = prepare(source_file(report_pdf(tmp_path / "again.pdf")), settings, tmp_path)
    again = parse_pages(doc, 0, 1, settings)[0]
    assert [(f.region_index, f.image_sha256) for f in again.figures] == [
        (f.region_index, f.image_sha256) for f in report[0].figures
    ]


def test_crop_is_rendered_at_budget_not_cropped_from_page() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    pix = render_region(page, (100, 100, 200, 150), max_pixels=20_000)
    assert pix.width * pix.height <= 20_000 and abs(pix.width / pix.height - 2) < 0.1
    assert zoom_for(100, 50, 10**9) == 3.0  # never upscaled past 3x


def test_png_writer_round_trips_rgb_gray_and_padded_rows() -> None:
    import numpy as np

    from caprl_index.figures.crop import png_bytes

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (20, 11), dtype=np.uint8)
    padded = np.zeros((20, 16), dtype=np.uint8)
    padded[:, :11] = gray  # rows of 11 samples stored 16 apart
    for data, w, h, n, stride, want in (
        (rgb.tobytes(), 53, 37, 3, None, rgb),
        (gray.tobytes(), 11, 20, 1, None, gray),
        (padded.tobytes(), 11, 20, 1, 16, gray),
    ):
        with Image.open(io.BytesIO(png_bytes(data, w, h, n, stride))) as img:
            assert img.size == (w, h) and np.array_equal(np.asarray(img), want)
    chart = pymupdf.open(stream=vector_chart_pdf(), filetype="pdf")
    pix = render_region(chart[0], (20, 20, 250, 200), max_pixels=300_000)  # a real render
    crop = encode_pixmap(pix, photo=False)
    with Image.open(io.BytesIO(crop.data)) as img:
        assert crop.mime == "image/png" and img.size == (pix.width, pix.height)
        assert img.tobytes() == pix.samples


def _letter_page() -> tuple[pymupdf.Document, pymupdf.Page, pymupdf.Document]:
    """A new US-letter page, its document (keep it alive) and the vector chart to place on it."""
    doc = pymupdf.open()
    return doc, doc.new_page(width=612, height=792), pymupdf.open(stream=vector_chart_pdf(), filetype="pdf")


def test_two_charts_side_by_side_on_text_page() -> None:
    _doc, page, chart = _letter_page()
    page.insert_textbox(pymupdf.Rect(72, 60, 540, 200), LOREM, fontsize=10)
    page.show_pdf_page(pymupdf.Rect(60, 420, 290, 600), chart, 0)
    page.show_pdf_page(pymupdf.Rect(330, 420, 560, 600), chart, 0)
    left, right = (r.bbox for r in find_regions(extract(page)))  # two figures, apart: not merged
    assert geometry.inside_fraction((100, 450, 260, 580), left) > 0.95 and left[2] < 300
    assert geometry.inside_fraction((370, 450, 530, 580), right) > 0.95 and right[0] > 300


def test_text_only_page_has_no_figures() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(72, 72, 540, 700), LOREM * 4, fontsize=11)
    page.draw_line((72, 710), (540, 710))  # a rule under the text
    page.draw_rect(pymupdf.Rect(70, 70, 542, 300), color=(0, 0, 0))  # a frame around text
    assert find_regions(extract(page)) == []


def _sidebar_chart_page(path: Path) -> Path:
    """A report page in the style of Pew's: body text in a left column that runs full width below,
    a chart in a right sidebar with a bold title and a small subtitle above it and a small source
    note and credit line below it."""
    doc, page, chart = _letter_page()
    page.insert_textbox(pymupdf.Rect(72, 90, 370, 330), LOREM, fontsize=11)
    page.insert_textbox(pymupdf.Rect(400, 100, 560, 140), "Revenue rose in every region", fontsize=13)
    page.insert_text((400, 152), "% change on the year", fontsize=9)
    page.show_pdf_page(pymupdf.Rect(395, 165, 560, 300), chart, 0)
    page.insert_text((400, 318), "Survey of 1,200 firms, March 2024.", fontsize=8)
    page.insert_text((400, 330), "EXAMPLE RESEARCH", fontsize=8)
    page.insert_textbox(pymupdf.Rect(72, 345, 540, 560), LOREM * 2, fontsize=11)
    doc.save(path)
    return path


def test_figure_extent_takes_its_title_subtitle_and_source_but_no_body_text(tmp_path: Path) -> None:
    settings = Settings()
    doc = prepare(source_file(_sidebar_chart_page(tmp_path / "sidebar.pdf")), settings, tmp_path)
    (chart,) = parse_pages(doc, 0, 1, settings)[0].figures
    x0, y0, x1, y1 = chart.bbox
    assert y0 <= 105 and 330 <= y1 <= 340  # title at 100 .. credit line at 330
    assert x0 >= 380  # the body text column (x 72-370) is left out, above and below
    assert chart.printed_caption.startswith("Revenue rose in every region % change on the year")
    assert "EXAMPLE RESEARCH" not in chart.ocr_text and "Quarterly" not in chart.ocr_text
    assert "Survey of 1,200 firms" in chart.context_text  # the source note still reaches the node text
    w, h = _size(chart)
    assert abs(w / h - (x1 - x0) / (y1 - y0)) < 0.05  # the crop shows the whole extent


def test_body_text_right_above_a_figure_stays_out_of_it(tmp_path: Path) -> None:
    _doc, page, chart = _letter_page()
    page.insert_textbox(pymupdf.Rect(72, 90, 540, 218), LOREM, fontsize=10)  # ends just above the chart
    page.show_pdf_page(pymupdf.Rect(120, 220, 480, 490), chart, 0)
    page.insert_textbox(pymupdf.Rect(72, 500, 540, 700), LOREM, fontsize=10)  # starts just below it
    (region,) = find_regions(extract(page))
    assert region.extent is not None and region.extent[1] >= 215 and region.extent[3] <= 495


def _icon_manual_page(path: Path) -> Path:
    """A help page: two sentences with a button icon inside them, a bullet picture and a 'NOTE'
    badge at the start of lines, and an icon in the page header."""
    icon = logo_png()
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_image(pymupdf.Rect(60, 20, 76, 36), stream=icon)  # header logo
    page.insert_text((80, 32), "Watch OnlineHelp  Getting Started", fontsize=10)
    page.insert_image(pymupdf.Rect(180, 92, 196, 108), stream=icon)  # a badge at the line start
    page.insert_text((200, 104), "NOTE", fontsize=9.5)
    page.insert_text((200, 132), "On the Favorites screen, touch", fontsize=9)
    page.insert_image(pymupdf.Rect(330, 120, 348, 138), stream=icon)
    page.insert_text((352, 132), "to move the app up to the top.", fontsize=9)
    page.insert_text((510, 132), "Column two.", fontsize=9)  # the next column, on the same row
    page.insert_text((200, 158), "On the Favorites screen, touch", fontsize=9)
    page.insert_image(pymupdf.Rect(330, 146, 348, 164), stream=photo_png((40, 40)))
    page.insert_text((352, 158), "to remove the app.", fontsize=9)
    page.insert_image(pymupdf.Rect(184, 176, 190, 182), stream=icon)  # a bullet picture
    page.insert_text((200, 184), "You can select up to six apps.", fontsize=9)
    page.insert_textbox(pymupdf.Rect(72, 220, 540, 500), LOREM, fontsize=10.5)
    doc.save(path)
    return path


def test_inline_icons_are_captioned_with_their_sentence(tmp_path: Path) -> None:
    settings = Settings()
    doc = prepare(source_file(_icon_manual_page(tmp_path / "manual.pdf")), settings, tmp_path)
    (row,) = parse_pages(doc, 0, 1, settings)[0].figures  # not the header logo, badge or bullet
    assert row.figure_type == "other"
    x0, y0, x1, y1 = row.bbox
    assert 195 <= x0 <= 201 and 118 <= y0 <= 124 and 160 <= y1 <= 166 and x1 >= 470  # both rows, whole lines
    assert "touch" in row.ocr_text and "to remove the app." in row.ocr_text
    assert "six apps" not in row.ocr_text and "NOTE" not in row.ocr_text
    assert "Column two" not in row.ocr_text and x1 < 505


def test_a_caption_ends_its_figure_and_the_next_figure_keeps_its_title() -> None:
    _doc, page, chart = _letter_page()
    page.insert_textbox(pymupdf.Rect(72, 40, 540, 90), LOREM, fontsize=10)
    page.show_pdf_page(pymupdf.Rect(120, 95, 480, 300), chart, 0)
    page.insert_text((120, 316), "Figure 1: Revenue by region.", fontsize=9)
    page.insert_text((150, 336), "Revenue by year", fontsize=13)  # the next chart's title, close below
    page.show_pdf_page(pymupdf.Rect(120, 342, 480, 540), chart, 0)
    page.insert_textbox(pymupdf.Rect(72, 580, 540, 700), LOREM, fontsize=10)
    first, second = find_regions(extract(page))
    assert first.extent is not None and second.extent is not None
    assert 316 <= first.extent[3] < 321  # through its caption, not the next title
    assert second.extent[1] <= 323  # the title (baseline 336, 13 pt) is the second chart's
    assert not geometry.overlaps(first.extent, second.extent)


def test_chart_labels_drawn_as_outlines_are_ocrd_and_text_layers_are_not() -> None:
    _doc, page, chart = _letter_page()
    outlined = pymupdf.open(stream=outlined_chart_pdf(), filetype="pdf")
    assert not outlined[0].get_text().strip()  # no text layer at all
    page.show_pdf_page(pymupdf.Rect(100, 100, 500, 400), outlined, 0)
    page.show_pdf_page(pymupdf.Rect(100, 450, 460, 720), chart, 0)  # labels in the text layer
    content = extract(page)
    (drawn, with_text) = (page_figures(page, content, 400_000, ocr=ocr) for ocr in (True, False))
    first, second = drawn
    assert {"North", "South", "East", "West"} <= set(first.ocr_text.split())
    assert "North" in second.ocr_text and second.ocr_text == with_text[1].ocr_text  # text layer, not OCR
    assert with_text[0].ocr_text == ""  # OCR off (Settings.figure_ocr False): nothing to read


def test_a_body_paragraph_above_a_photo_is_not_its_caption_and_context_keeps_to_its_column() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    left = "The other column talks about the budget of the city council for the coming year. " * 4
    page.insert_textbox(pymupdf.Rect(40, 80, 290, 700), left, fontsize=10)
    above = "Our campus sits by the river, and students walk to class along the water every day."
    page.insert_textbox(pymupdf.Rect(320, 110, 570, 150), above, fontsize=10)  # ends ~20 pt above
    page.insert_image(pymupdf.Rect(320, 150, 570, 330), stream=photo_png())
    page.insert_textbox(pymupdf.Rect(320, 345, 570, 420), "Below the photo the column goes on.", fontsize=10)
    (photo,) = page_figures(page, extract(page), 300_000)
    assert photo.printed_caption == ""  # the paragraph above is body text, not a title
    assert "river" in photo.context_text and "column goes on" in photo.context_text
    assert "budget" not in photo.context_text  # the next column is about something else


# --- golden pages from the shared corpus ------------------------------------------------------


def _regions(path: Path, page_number: int) -> list:
    settings = Settings()
    doc = prepare(source_file(path), settings, Path("/tmp"))
    with pymupdf.open(path) as pdf:
        return page_regions(pdf[page_number - 1], page_number - 1, doc, settings)


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "page", "evidence"),
    [
        ("PIP_Seniors-and-Tech-Use_040314.pdf", 6, (403, 187, 540, 328)),  # vector pie chart
        ("12-15-15-ISIS-and-terrorism-release-final.pdf", 18, (317, 462, 541, 618)),  # vector bars
        ("PG_2021.03.04_US-Views-on-China_FINAL.pdf", 16, (68, 154, 540, 667)),  # two panels, one figure
        ("fdac8d1e9ef56519371df7e6532df27d.pdf", 2, (58, 112, 541, 754)),  # infographic of icons
        ("2310.05634v2.pdf", 8, (304, 82, 526, 269)),  # paper figure
        ("PIP_Seniors-and-Tech-Use_040314.pdf", 6, (396, 107, 524, 151)),  # the pie chart's title
        ("PIP_Seniors-and-Tech-Use_040314.pdf", 6, (397, 375, 485, 384)),  # ... and its credit line
        ("2024.ug.eprospectus.pdf", 22, (899, 622, 1141, 725)),  # the quote under a student's photo
        ("honor_watch_gs_pro.pdf", 16, (177, 109, 515, 177)),  # "touch [icon] to remove the app"
    ],
)
def test_golden_evidence_regions(name: str, page: int, evidence: tuple) -> None:
    path = SHARED / "mmlongbench-dev" / "documents" / name
    if not path.exists():
        pytest.skip(f"{name} is absent")
    regions = _regions(path, page)
    assert max(geometry.inside_fraction(evidence, box) for _, box in regions) >= 0.5


@needs_shared
@pytest.mark.shared
def test_golden_ten_k_text_pages_have_no_figures() -> None:
    path = SHARED / "mmlongbench-dev" / "documents" / "NETFLIX_2015_10K.pdf"
    if not path.exists():
        pytest.skip("NETFLIX_2015_10K.pdf is absent")
    assert all(_regions(path, n) == [] for n in (15, 17, 19, 23, 25))  # financial tables and prose


@needs_shared
@pytest.mark.shared
def test_golden_debian_figure_captions() -> None:
    captions = SHARED / "debian" / "figure_captions.jsonl"
    if not captions.exists():
        pytest.skip("debian/figure_captions.jsonl is absent")
    wanted = [json.loads(line) for line in captions.read_text().splitlines()[:60:6]]
    settings = Settings()
    found = 0
    for item in wanted:
        path = SHARED / "debian" / item["file"]
        doc = prepare(source_file(path), settings, Path("/tmp"))
        with pymupdf.open(path) as pdf:
            found += bool(page_regions(pdf[item["page"] - 1], item["page"] - 1, doc, settings))
    assert found >= 0.8 * len(wanted)


def _picture_region(width: float = 300, height: float = 200) -> object:
    from caprl_index.figures.content import ImageBox
    from caprl_index.figures.regions import Region

    box = (100.0, 100.0, 100 + width, 100 + height)
    return Region(box, images=[ImageBox(box, 7, 600, 400, 50_000)], n_graphic=1, n_shapes=1)


def test_figure_types_of_pictures_greyscale_photo_and_flat_artwork() -> None:
    import numpy as np

    from caprl_index.figures.classify import classify_region

    rng = np.random.default_rng(1)
    tones = np.linspace(0, 130, 300)[None, :] + np.linspace(0, 100, 200)[:, None]  # a grey scene's range
    grey = np.clip(tones + rng.normal(0, 12, (200, 300)), 0, 235).astype("uint8")  # and its grain
    assert classify_region(_picture_region(), Image.fromarray(grey).convert("RGB"), []) == "photo"
    # Flat panels on a dark ground spread over many colours once anti-aliased: not a photo, so OCR'd.
    path = Path(__file__).resolve().parents[1] / "examples" / "docs" / "city-transit-infographic.pdf"
    settings = Settings()
    (art,) = parse_pages(prepare(source_file(path), settings, Path("/tmp")), 0, 1, settings)[0].figures
    assert art.figure_type != "photo" and "passenger trips" in art.ocr_text


@needs_shared
def test_text_boxes_do_not_depend_on_pymupdf4llms_process_wide_switches() -> None:
    """Importing pymupdf4llm (as `import pymupdf` does when it is installed) turns MuPDF's glyph-box
    corrections off for the whole process; detection then saw other figures in the reader and the
    benchmarks than in the parser workers (2303.08559v2.pdf page 21 lost its figure). Extraction sets
    PyMuPDF's defaults for its call and puts the caller's switches back."""
    tools = pymupdf.TOOLS
    before = tools.unset_quad_corrections(), tools.set_small_glyph_heights()
    with pymupdf.open(SHARED / "mmlongbench-dev" / "documents" / "2303.08559v2.pdf") as doc:
        page = doc[20]
        try:
            tools.unset_quad_corrections(False)  # as in a parser worker
            tools.set_small_glyph_heights(False)
            expected = [line.bbox for line in extract(page).lines]
            tools.unset_quad_corrections(True)  # as after `import pymupdf4llm`
            raw = [tuple(line["bbox"]) for b in page.get_text("dict")["blocks"] for line in b.get("lines", ())]
            assert {round(b[1]) for b in raw} != {round(b[1]) for b in expected}  # the switch matters here
            tools.set_small_glyph_heights(True)
            assert [line.bbox for line in extract(page).lines] == expected
            assert tools.unset_quad_corrections() and tools.set_small_glyph_heights()  # the caller's, kept
        finally:
            tools.unset_quad_corrections(before[0])
            tools.set_small_glyph_heights(before[1])


def test_vector_paths_are_read_one_at_a_time_as_the_list_form_reads_them() -> None:
    """A page of tens of thousands of marks (a dot map, a dense scatter plot: 187,000 on one page of the
    dev corpus) held them all as one list of dicts, ~350 MB at once in the parser worker. Paths now come
    one at a time, and a fill followed by the stroke of the same path still reads as one "fs" path."""
    import tracemalloc

    from caprl_index.figures.content import _read_paths

    doc = pymupdf.open()
    page = doc.new_page()
    shape = page.new_shape()
    for i in range(20_000):
        x, y = 40 + (i % 200) * 2.5, 100 + (i // 200) * 2.5
        shape.draw_rect(pymupdf.Rect(x, y, x + 1.5, y + 1.5))
        shape.finish(fill=(0.1, 0.3, 0.8), color=None)
    for i in range(5):  # framed boxes: fill and stroke of one path
        shape.draw_rect(pymupdf.Rect(60 + i * 90, 500, 130 + i * 90, 560))
        shape.finish(fill=(0.9, 0.5, 0.1), color=(0, 0, 0), width=1)
    shape.commit()
    page = doc.reload_page(page)

    tracemalloc.start()
    listed = page.get_cdrawings()
    as_list = tracemalloc.get_traced_memory()[1]
    del listed
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    paths = _read_paths(page, page.rect)
    one_at_a_time = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()

    assert len(paths) == 20_005
    framed = [p for p in paths if p.bbox[1] >= 499]
    assert len(framed) == 5 and all(p.fill and p.rect and not p.outline for p in framed)  # "fs", not "f" + "s"
    expected = [(tuple(d["rect"]), "f" in d["type"]) for d in page.get_cdrawings() if (d["rect"][2] - d["rect"][0]) > 0]
    assert [(p.bbox, p.fill) for p in paths] == expected
    assert one_at_a_time < as_list / 3, (one_at_a_time >> 20, as_list >> 20)


def test_ink_clusters_connect_what_touches_within_the_gap_diagonals_included() -> None:
    """Page ink is grouped into drawings by 8-connected components of an occupancy grid (OpenCV's labels,
    not scipy.ndimage's: same partition, without scipy's import in every parser)."""
    import random

    from caprl_index.figures.ink import CELL, cluster_labels

    gap = 6.0
    # a and b touch only through a corner once padded; c is far away; a frame d holds e, not glued to it
    boxes = [(10.0, 10.0, 20.0, 20.0), (27.0, 27.0, 33.0, 33.0), (200.0, 200.0, 210.0, 210.0)]
    boxes += [(300.0, 300.0, 400.0, 400.0), (340.0, 340.0, 360.0, 360.0)]
    labels = cluster_labels(boxes, [False, False, False, True, False], 612, 792, gap)
    assert labels[0] == labels[1] and len({labels[0], labels[2], labels[3], labels[4]}) == 4

    def partition(values: list[int]) -> set[frozenset[int]]:
        return {frozenset(i for i, v in enumerate(values) if v == label) for label in set(values)}

    rng = random.Random(7)
    for _ in range(15):
        boxes, outlines = [], []
        for _ in range(rng.randrange(1, 40)):
            x, y = rng.uniform(0, 560), rng.uniform(0, 740)
            boxes.append((x, y, x + rng.uniform(0.5, 50), y + rng.uniform(0.5, 50)))
            outlines.append(rng.random() < 0.2)
        got = cluster_labels(boxes, outlines, 612, 792, gap)
        # the same boxes, grouped by hand: two connect when their padded boxes' cells touch (or through others)
        cells = [_cells(b, gap, CELL, outline=o) for b, o in zip(boxes, outlines, strict=True)]
        assert partition(got) == partition(_groups(cells))


def _cells(box: tuple, gap: float, cell: float, *, outline: bool) -> set[tuple[int, int]]:
    """The grid cells a box inks (a large frame only along its edges), as `cluster_labels` marks them."""
    pad = gap / 2
    x0, y0 = max(int((box[0] - pad) / cell), 0), max(int((box[1] - pad) / cell), 0)
    x1, y1 = int((box[2] + pad) / cell) + 1, int((box[3] + pad) / cell) + 1
    inked = {(y, x) for y in range(y0, y1) for x in range(x0, x1)}
    if outline and (x1 - x0) > 8 and (y1 - y0) > 8:
        e = max(1, int(gap / cell))
        inked = {(y, x) for y, x in inked if y < y0 + e or y >= y1 - e or x < x0 + e or x >= x1 - e}
    return inked


def _groups(cells: list[set[tuple[int, int]]]) -> list[int]:
    """Union-find over the boxes whose cells touch: each box's group."""
    parent = list(range(len(cells)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(cells)):
        for j in range(i):
            if _touch(cells[i], cells[j]):
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(cells))]


def _touch(a: set[tuple[int, int]], b: set[tuple[int, int]]) -> bool:
    return any((y + dy, x + dx) in b for y, x in a for dy in (-1, 0, 1) for dx in (-1, 0, 1))
