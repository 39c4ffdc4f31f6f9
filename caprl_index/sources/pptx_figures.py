"""Native PowerPoint charts as figures: kind="figure", figure_type="chart", their exact data as text.

With LibreOffice the crop is the chart as rendered on the slide (`rendered_chart_figures`). Without
it there is no render, so the image is the chart's data drawn as a small table (`data_image`): a
figure always has an image the captioner can read and `show` can display, and it states exactly
what the chart's numbers are.
"""

from __future__ import annotations

from typing import Any

from caprl_index.figures.crop import Crop, encode_pil, encode_pixmap, render_region
from caprl_index.models import BBox, Figure, Page
from caprl_index.sources.base import NativeChart

CONTEXT_CHARS = 600  # slide text given with the chart
_TABLE_FONT = 18
_MAX_LINE_CHARS = 110
_MAX_LINES = 40


def chart_figures(
    charts: tuple[NativeChart, ...], page: Page, max_pixels: int, first_index: int = 0
) -> tuple[Figure, ...]:
    """Chart figures of a slide read without a render: each image is its data as a table."""
    full: BBox = (0.0, 0.0, page.width, page.height)
    return tuple(
        chart_figure(chart, chart.bbox or full, data_image(chart, max_pixels), page.text, first_index + i)
        for i, chart in enumerate(charts)
    )


def rendered_chart_figures(
    pdf_page: Any, charts: tuple[NativeChart, ...], page: Page, max_pixels: int, first_index: int = 0
) -> list[Figure]:
    """Chart figures of a slide LibreOffice rendered: each image is the chart's region of the render
    (the PDF page is the slide at its size in points, so the deck's frames apply as they are)."""
    figures = []
    rect = pdf_page.rect
    for i, chart in enumerate(charts):
        box = _clip(chart.bbox, (rect.x0, rect.y0, rect.x1, rect.y1))
        if box is None:
            crop = data_image(chart, max_pixels)
            box = (rect.x0, rect.y0, rect.x1, rect.y1)
        else:
            crop = encode_pixmap(render_region(pdf_page, box, max_pixels), photo=False)
        figures.append(chart_figure(chart, box, crop, page.text, first_index + i))
    return figures


def chart_figure(chart: NativeChart, bbox: BBox, crop: Crop, slide_text: str, index: int) -> Figure:
    return Figure(
        kind="figure",
        figure_type="chart",
        bbox=tuple(round(v, 2) for v in bbox),  # type: ignore[arg-type]
        image=crop.data,
        mime=crop.mime,
        image_sha256=crop.sha256,
        region_index=index,
        printed_caption=chart.title,
        context_text=slide_text[:CONTEXT_CHARS],
        ocr_text=chart.text,
    )


def data_image(chart: NativeChart, max_pixels: int) -> Crop:
    """The chart's data text set as lines on a white PNG (a stand-in image when nothing renders)."""
    from PIL import Image, ImageDraw, ImageFont

    lines = _wrap(chart.text.replace(". ", ".\n").splitlines())
    font = ImageFont.load_default(size=_TABLE_FONT)
    step = _TABLE_FONT + 8
    width = 24 + max(int(font.getlength(line)) for line in lines)
    image = Image.new("RGB", (max(width, 64), 24 + step * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((12, 12 + row * step), line, fill="black", font=font)
    return encode_pil(image, max_pixels, photo=False)


def _wrap(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        while len(line) > _MAX_LINE_CHARS:
            cut = line.rfind(" ", 0, _MAX_LINE_CHARS)
            cut = cut if cut > 0 else _MAX_LINE_CHARS
            out.append(line[:cut])
            line = "  " + line[cut:].strip()
        out.append(line)
    return ([*out[: _MAX_LINES - 1], "…"]) if len(out) > _MAX_LINES else out or [""]


def _clip(bbox: BBox | None, page: BBox) -> BBox | None:
    if bbox is None:
        return None
    box = (max(bbox[0], page[0]), max(bbox[1], page[1]), min(bbox[2], page[2]), min(bbox[3], page[3]))
    return box if box[2] - box[0] >= 4 and box[3] - box[1] >= 4 else None
