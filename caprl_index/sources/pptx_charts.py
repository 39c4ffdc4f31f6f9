"""Native PowerPoint charts: the exact data behind a chart, as records and as searchable text.

A chart drawn by PowerPoint carries its numbers in the chart part's XML cache (``c:numCache``,
``c:strCache``). Reading them gives ground truth that no caption or OCR can match, so every chart
on a slide becomes a line such as::

    Chart: Wild Duck Observations by Year (bar chart). Categories: 2019, 2020.
    Series Freshwater Ducks: 120, 130. Series Saltwater Ducks: 80, 95.

Values are kept as the strings stored in the file (`ChartData`); the text renders them with 15
significant digits, which is all a double holds, so ``0.60000000000000009`` reads ``0.6``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

C_NS = "http://schemas.openxmlformats.org/drawingml/2006/chart"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
_NS = {"c": C_NS, "a": A_NS}
_AXES = ("c:catAx", "c:valAx", "c:dateAx", "c:serAx")
# Long series are cut in the text (the records keep everything): a 5,000-point scatter is noise
# to an embedding model and would crowd out the slide's words.
MAX_POINTS_IN_TEXT = 200


@dataclass(frozen=True)
class ChartSeries:
    """One series: its name, category (or x) labels and values, as stored in the file."""

    name: str | None
    categories: tuple[str, ...]
    values: tuple[str, ...]
    category_format: str = ""  # number format of numeric categories ("m/d/yyyy" for dates)
    sizes: tuple[str, ...] = ()  # bubble sizes


@dataclass(frozen=True)
class ChartPlot:
    """One plot of a chart (a combo chart has several): ``barChart``, ``lineChart``, ..."""

    plot_type: str
    series: tuple[ChartSeries, ...]
    bar_dir: str = ""  # "bar" (horizontal) or "col" for bar charts


@dataclass(frozen=True)
class ChartData:
    """Everything a chart states in words and numbers."""

    title: str | None
    axis_titles: tuple[str, ...]
    plots: tuple[ChartPlot, ...]


def parse_chart(chart_space: Any) -> ChartData:
    """Read a ``c:chartSpace`` lxml element into a `ChartData`."""
    chart = chart_space.find("c:chart", _NS)
    if chart is None:
        return ChartData(title=None, axis_titles=(), plots=())
    title = chart.find("c:title", _NS)
    plot_area = chart.find("c:plotArea", _NS)
    axis_titles: list[str] = []
    plots: list[ChartPlot] = []
    if plot_area is not None:
        for axis in _iter_axes(plot_area):
            text = _title_text(axis.find("c:title", _NS))
            if text:
                axis_titles.append(text)
        plots = [_parse_plot(el) for el in plot_area if _local(el.tag).endswith("Chart")]
    return ChartData(title=_title_text(title) or None, axis_titles=tuple(axis_titles), plots=tuple(plots))


def _iter_axes(plot_area: Any) -> Iterator[Any]:
    for el in plot_area:
        if f"c:{_local(el.tag)}" in _AXES:
            yield el


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _title_text(title: Any) -> str:
    """Text of a ``c:title``: rich text paragraphs, or the cached cell it refers to."""
    if title is None:
        return ""
    runs = (p.iterfind(".//a:t", _NS) for p in title.iterfind(".//a:p", _NS))
    paragraphs = ["".join(t.text or "" for t in run) for run in runs]
    text = " ".join(p.strip() for p in paragraphs if p.strip())
    if not text:
        text = " ".join(_points(title.find("c:tx", _NS)))
    return text.strip()


def _parse_plot(plot: Any) -> ChartPlot:
    bar_dir = plot.find("c:barDir", _NS)
    series = tuple(_parse_series(ser) for ser in plot.iterfind("c:ser", _NS))
    return ChartPlot(
        plot_type=_local(plot.tag),
        series=series,
        bar_dir=bar_dir.get("val", "") if bar_dir is not None else "",
    )


def _parse_series(ser: Any) -> ChartSeries:
    tx = ser.find("c:tx", _NS)
    name = None
    if tx is not None:
        name = " ".join(_points(tx)) or (tx.findtext("c:v", default="", namespaces=_NS) or None)
    cat = _first(ser, "c:cat", "c:xVal")
    val = _first(ser, "c:val", "c:yVal")
    fmt = cat.findtext(".//c:formatCode", default="", namespaces=_NS) if cat is not None else ""
    return ChartSeries(
        name=name,
        categories=tuple(_points(cat)),
        values=tuple(_points(val)),
        category_format=fmt,
        sizes=tuple(_points(ser.find("c:bubbleSize", _NS))),
    )


def _first(parent: Any, *paths: str) -> Any:
    for path in paths:
        found = parent.find(path, _NS)
        if found is not None:
            return found
    return None


def _points(data: Any) -> list[str]:
    """Cached point values of a data source (``*Ref`` cache or ``*Lit``), in index order.

    Multi-level categories keep their innermost level, which is what the axis labels each point with.
    """
    if data is None:
        return []
    level = data.find(".//c:lvl", _NS)
    source = level if level is not None else data
    points = [
        (int(pt.get("idx", "0") or 0), pt.findtext("c:v", default="", namespaces=_NS))
        for pt in source.iterfind(".//c:pt", _NS)
    ]
    points.sort(key=lambda p: p[0])
    return [value for _, value in points]


# --- text rendering ------------------------------------------------------------------------------


def chart_text(chart: ChartData) -> str:
    """One searchable paragraph that states the chart's title, type, categories and every value."""
    kinds = " and ".join(dict.fromkeys(_plot_name(p) for p in chart.plots)) or "chart"
    head = f"Chart: {chart.title} ({kinds})." if chart.title else f"Chart ({kinds})."
    parts = [head]
    if chart.axis_titles:
        parts.append(f"Axes: {', '.join(chart.axis_titles)}.")
    for plot in chart.plots:
        parts.extend(_plot_sentences(plot))
    return " ".join(parts)


def _plot_name(plot: ChartPlot) -> str:
    base = plot.plot_type.removesuffix("Chart").replace("3D", " 3-D")
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base).lower().strip()
    if words == "bar" and plot.bar_dir == "bar":
        words = "horizontal bar"
    words = {"of pie": "pie of pie"}.get(words, words)
    if words.endswith(" 3-d"):
        words = "3-D " + words.removesuffix(" 3-d")
    return f"{words} chart"


def _plot_sentences(plot: ChartPlot) -> Iterator[str]:
    xy = plot.plot_type in ("scatterChart", "bubbleChart")
    shared = _shared_categories(plot.series)
    if shared and not xy:
        yield f"Categories: {_join(_labels(plot.series[0]))}."
    for number, series in enumerate(plot.series, 1):
        name = _series_label(series.name, number)
        if xy:
            yield f"{name}: {_join(_xy_pairs(series))}."
        elif shared or not series.categories:
            yield f"{name}: {_join(_number(v) for v in series.values)}."
        else:
            pairs = (f"{c} = {_number(v)}" for c, v in zip(_labels(series), series.values, strict=False))
            yield f"{name}: {_join(pairs)}."


def _series_label(name: str | None, number: int) -> str:
    if not name:
        return f"Series {number}"
    return name if name.lower().startswith("series") else f"Series {name}"


def _shared_categories(series: tuple[ChartSeries, ...]) -> bool:
    return bool(series) and all(s.categories == series[0].categories for s in series)


def _xy_pairs(series: ChartSeries) -> Iterator[str]:
    xs = _labels(series) or [str(i) for i in range(1, len(series.values) + 1)]
    for i, (x, y) in enumerate(zip(xs, series.values, strict=False)):
        size = f", size {_number(series.sizes[i])}" if i < len(series.sizes) else ""
        yield f"({x}, {_number(y)}{size})"


def _join(items: Iterable[str]) -> str:
    shown = list(items)
    extra = len(shown) - MAX_POINTS_IN_TEXT
    if extra > 0:
        shown = [*shown[:MAX_POINTS_IN_TEXT], f"… ({extra} more)"]
    return ", ".join(shown)


def _labels(series: ChartSeries) -> list[str]:
    if _is_date_format(series.category_format):
        return [_excel_date(c) for c in series.categories]
    return [_number(c) for c in series.categories]


def _is_date_format(fmt: str) -> bool:
    # Quoted literals and colours aside, a format with d/m/y tokens is a date format.
    bare = re.sub(r'"[^"]*"|\[[^\]]*\]', "", fmt.lower())
    return "yy" in bare or ("d" in bare and "m" in bare)


def _excel_date(value: str) -> str:
    try:
        serial = float(value)
    except ValueError:
        return value
    if not 0 < serial < 2_958_466:  # Excel's last date is 9999-12-31
        return value
    # Serial 60 is Excel's phantom 1900-02-29; counting from 1899-12-30 is right after it.
    return (dt.date(1899, 12, 30) + dt.timedelta(days=int(serial))).isoformat()


def _number(value: str) -> str:
    """A numeric string in at most 15 significant digits; anything else unchanged."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number != number or number in (float("inf"), float("-inf")):
        return value
    return format(number, ".15g")
