"""Generate the example documents in ``examples/docs``.

    python examples/make_docs.py [--out examples/docs]

Three small documents that exercise caprl-index like real ones do:

* ``solar-market-report-2024.pdf`` - a 5-page report made with matplotlib; its four charts are
  VECTOR drawings (no embedded images) with their titles and axis labels kept as real text.
* ``city-transit-infographic.pdf`` - 2 pages made with PyMuPDF around a RASTER infographic (its words
  exist only as pixels) and a photo-like picture.
* ``quarterly-review.pptx`` - a 5-slide python-pptx deck with a native column chart, a picture,
  bullets and a table.

All numbers are made up. Seeds, fonts (matplotlib's bundled DejaVu Sans, the PDF base-14 Helvetica)
and metadata dates are fixed so re-running produces identical bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the script must run on CI machines without a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

FIXED_DATE = dt.datetime(2025, 3, 14, 9, 0, 0, tzinfo=dt.timezone.utc)
DOCS = Path(__file__).resolve().parent / "docs"

# --- the facts (examples/README.md and the end-to-end tests quote these) ---------------------------
REGION_GW = {
    "China": 277,
    "Europe": 66,
    "United States": 41,
    "India": 25,
    "Rest of Asia-Pacific": 22,
    "Latin America": 19,
    "Middle East & Africa": 13,
}
BATTERY_USD_PER_KWH = {
    2015: 448, 2016: 345, 2017: 258, 2018: 210, 2019: 183,
    2020: 160, 2021: 150, 2022: 161, 2023: 139, 2024: 115,
}  # fmt: skip
SUPPLIER_SHARE_PCT = {
    "Helios Modules": 21,
    "Sunforge": 17,
    "Brightwave Solar": 14,
    "Apex Photonics": 11,
    "Terracell": 9,
    "Others": 28,
}
LCOE_USD_PER_MWH = {
    "Utility-scale solar": 49,
    "Onshore wind": 50,
    "Gas combined cycle": 76,
    "Offshore wind": 82,
    "Coal": 117,
    "Nuclear": 180,
}
TRANSIT_TILES = [  # (big number, label, icon) drawn into the raster infographic only
    ("48.2 M", "passenger trips", "people"),
    ("312", "buses in service\n41% battery-electric", "bus"),
    ("27 km", "of new protected\nbike lanes", "bike"),
    ("94%", "of trains on time", "clock"),
]
QUARTERS = ["Q1 2024", "Q2 2024", "Q3 2024", "Q4 2024"]
REVENUE_MUSD = {
    "Apparel": (12.4, 13.1, 14.8, 18.2),
    "Footwear": (8.6, 9.0, 9.7, 11.5),
    "Equipment": (5.2, 6.8, 7.9, 6.1),
}
STORES = {"Pacific Northwest": 14, "California": 11, "Mountain West": 8, "Midwest": 6, "Northeast": 9}

REPORT_TITLE = "Solar Market Report 2024"
A4 = (8.27, 11.69)  # inches
MARGIN = 0.11  # figure fraction on left and right


def _setup_matplotlib() -> None:
    plt.rcParams.update(
        {
            "pdf.fonttype": 42,  # TrueType: text stays extractable text, not glyph outlines
            "font.family": "DejaVu Sans",  # bundled with matplotlib, so identical on every machine
            "svg.hashsalt": "caprl",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
        }
    )


# --- 1. the solar report (vector charts) ------------------------------------------------------------
class _Page:
    """One A4 report page with a text cursor that runs top to bottom, in points."""

    def __init__(self, number: int, total: int) -> None:
        self.fig = Figure(figsize=A4)
        self.canvas = FigureCanvasAgg(self.fig)  # a renderer to measure text extents with
        self.y = 72.0  # points from the top
        h = A4[1] * 72
        self.fig.text(MARGIN, 1 - 40 / h, f"{REPORT_TITLE} · Meridian Energy Research", fontsize=8, color="0.4")
        self.fig.add_artist(plt.Line2D([MARGIN, 1 - MARGIN], [1 - 46 / h] * 2, lw=0.6, color="0.6"))
        self.fig.text(1 - MARGIN, 30 / h, f"Page {number} of {total}", fontsize=8, color="0.4", ha="right")

    def _frac(self, y_pt: float) -> float:
        return 1 - y_pt / (A4[1] * 72)

    def heading(self, text: str, size: float = 14) -> None:
        self.fig.text(MARGIN, self._frac(self.y), text, fontsize=size, weight="bold", va="top")
        self.y += size * 1.9

    def prose(self, *paragraphs: str, size: float = 10, width: int = 88) -> None:
        for para in paragraphs:
            lines = textwrap.wrap(" ".join(para.split()), width)
            self.fig.text(MARGIN, self._frac(self.y), "\n".join(lines), fontsize=size, va="top", linespacing=1.45)
            self.y += len(lines) * size * 1.45 + size * 0.9

    def chart(self, height_pt: float, caption: str, draw: Callable[[Axes], None], left: float = 0.09) -> None:
        """Draw a chart of the given height at the cursor, with its printed caption underneath.

        ``left`` is the room (figure fraction) kept for the y tick labels and the y-axis label.
        """
        h = A4[1] * 72
        top = self.y + 22  # room for the axes title
        ax = self.fig.add_axes((MARGIN + left, 1 - (top + height_pt) / h, 0.78 - left, height_pt / h))
        draw(ax)
        # the caption goes under whatever the chart really occupies (rotated tick labels, axis label)
        box = ax.get_tightbbox(self.canvas.get_renderer())
        assert box is not None  # only None for an invisible axes
        cap_y = h - box.y0 / self.fig.dpi * 72 + 12
        self.fig.text(MARGIN, self._frac(cap_y), caption, fontsize=9, style="italic", va="top")
        self.y = cap_y + 34


def _report_pages() -> list[Figure]:
    pages = [_Page(n, 5) for n in range(1, 6)]
    _title_page(pages[0])
    _regions_page(pages[1])
    _battery_page(pages[2])
    _suppliers_page(pages[3])
    _lcoe_page(pages[4])
    return [p.fig for p in pages]


def _title_page(p: _Page) -> None:
    p.y = 150
    p.heading(REPORT_TITLE, size=28)
    p.y += 6
    p.prose("Annual review of deployment, costs and the supplier landscape", size=13)
    p.prose("Meridian Energy Research (a fictional organisation) · Published March 2025", size=10)
    p.y += 40
    p.heading("Executive summary")
    p.prose(
        """2024 was another record year for photovoltaics. Capacity additions grew for the fourth year in a
        row, led once again by one market that now accounts for well over half of the global total, while
        growth in the rest of the world was broad-based rather than concentrated.""",
        """Costs kept falling along the whole value chain. The fall was steepest for stationary storage,
        which is turning solar from a daytime-only resource into one that can be dispatched into the
        evening peak. Upstream, manufacturing remained concentrated among a handful of large suppliers.""",
        """For new power plants, solar and wind are now the cheapest options in most markets, and the
        outlook section explains why we expect that gap to keep widening through 2030.""",
        """About the data: every number in this report is illustrative. The figures were invented to
        demonstrate document search and do not describe any real market, company or product.""",
    )


def _draw_regions(ax: Axes) -> None:
    bars = ax.bar(list(REGION_GW), list(REGION_GW.values()), color="#f2a900", edgecolor="#b07a00", lw=0.6)
    ax.bar_label(bars, fmt="%d", fontsize=8, padding=2)
    ax.set_title("New solar installations by region, 2024")
    ax.set_ylabel("Capacity added (GW)")
    ax.set_xlabel("Region")
    ax.tick_params(axis="x", labelsize=7.5, rotation=20)


def _draw_battery(ax: Axes) -> None:
    years, prices = list(BATTERY_USD_PER_KWH), list(BATTERY_USD_PER_KWH.values())
    ax.plot(years, prices, marker="o", color="#1f6fb2", linewidth=2)
    for x, y in zip(years, prices, strict=True):
        ax.annotate(str(y), (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7.5)
    ax.set_title("Battery storage pack prices, 2015-2024")
    ax.set_ylabel("Price (USD per kWh)")
    ax.set_xlabel("Year")
    ax.set_xticks(years)
    ax.set_ylim(0, 500)
    ax.grid(axis="y", color="0.9")


def _draw_suppliers(ax: Axes) -> None:
    ax.pie(
        list(SUPPLIER_SHARE_PCT.values()),
        labels=[f"{k} {v}%" for k, v in SUPPLIER_SHARE_PCT.items()],
        colors=["#d1495b", "#edae49", "#00798c", "#30638e", "#66a182", "#bbbbbb"],
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.38, "edgecolor": "white"},
        textprops={"fontsize": 8.5},
    )
    ax.text(0, 0, "2024\nshipments", ha="center", va="center", fontsize=9)
    ax.set_title("Solar module manufacturers: market share 2024")
    ax.set_aspect("equal")


def _draw_lcoe(ax: Axes) -> None:
    names, values = list(LCOE_USD_PER_MWH)[::-1], list(LCOE_USD_PER_MWH.values())[::-1]
    bars = ax.barh(names, values, color=["#888888"] * 4 + ["#3a923a", "#f2a900"])
    ax.bar_label(bars, fmt="%d", fontsize=8, padding=3)
    ax.set_title("Levelized cost of electricity by technology, 2024")
    ax.set_xlabel("LCOE (USD per MWh)")
    ax.set_ylabel("Technology")
    ax.tick_params(axis="y", labelsize=8)


def _regions_page(p: _Page) -> None:
    p.heading("1. Installations by region")
    p.prose(
        """Worldwide, 463 GW of new solar capacity was connected to the grid in 2024. As Figure 1 shows,
        China alone installed 277 GW, more than the rest of the world combined. Europe was a distant second
        with 66 GW, followed by the United States with 41 GW and India with 25 GW.""",
    )
    p.chart(
        290,
        "Figure 1: Solar PV capacity added by region in 2024, in gigawatts (illustrative data).",
        _draw_regions,
    )
    p.prose(
        """Outside China, the fastest growth came from India, where large tenders for utility-scale parks
        doubled installations in two years, and from the Middle East & Africa, starting from a small base.
        Latin America (19 GW) was driven by distributed rooftop systems in Brazil. In Europe, rooftop demand
        cooled after the 2022-2023 boom, while ground-mounted parks took a larger share of regional
        installations than in any previous year.""",
    )


def _battery_page(p: _Page) -> None:
    p.heading("2. Battery storage prices")
    p.prose(
        """Lithium-ion battery pack prices fell to 115 US dollars per kilowatt-hour in 2024, a drop of 17%
        from the year before and of 74% since 2015. Figure 2 plots the price by year: the only interruption
        of the decline was 2022, when lithium carbonate prices spiked and packs briefly became more
        expensive (161 USD/kWh).""",
    )
    p.chart(
        280,
        "Figure 2: Average lithium-ion battery pack price by year, 2015-2024 (illustrative data).",
        _draw_battery,
    )
    p.prose(
        """Cheaper storage changes how solar is built. In 2024 almost a third of new utility-scale solar
        parks in our sample were paired with batteries, typically sized for two to four hours of output, so
        that midday generation can be shifted into the evening peak when prices are highest.""",
        """We expect pack prices to continue falling, though more slowly, as lithium iron phosphate
        chemistry becomes the default for stationary storage and cell factories run closer to capacity.""",
    )


def _suppliers_page(p: _Page) -> None:
    p.heading("3. Module supplier landscape")
    p.prose(
        """Module manufacturing stayed concentrated. Figure 3 breaks down 2024 shipments by supplier: the
        five largest companies together shipped 72% of all modules, with Helios Modules leading at 21%,
        ahead of Sunforge (17%) and Brightwave Solar (14%).""",
    )
    p.chart(
        300,
        "Figure 3: Market share of solar module suppliers by 2024 shipments (illustrative data).",
        _draw_suppliers,
    )
    p.prose(
        """Despite this concentration, margins were thin: module prices fell faster than costs for most of
        the year, and several smaller manufacturers, grouped here as Others, paused production lines. We
        expect the share of the top five to rise further in 2025 as consolidation continues.""",
    )


def _lcoe_page(p: _Page) -> None:
    p.heading("4. Cost of electricity by technology")
    p.prose(
        """Figure 4 compares the levelized cost of electricity (LCOE) of new plants. Utility-scale solar, at
        49 USD per megawatt-hour, is now level with onshore wind (50 USD/MWh) and well below gas combined
        cycle plants (76 USD/MWh), offshore wind, coal and nuclear.""",
    )
    p.chart(
        230,
        "Figure 4: Levelized cost of electricity for new plants by technology, 2024 (illustrative).",
        _draw_lcoe,
        left=0.2,
    )
    p.heading("5. Outlook", size=12)
    p.prose(
        """We expect global additions to exceed 500 GW in 2025. Grid connection queues, not module supply,
        are now the main constraint in Europe and the United States, and the value of daytime power is
        falling wherever solar is abundant, which strengthens the case for pairing new parks with storage.""",
        """Methodology: capacity is counted in direct-current gigawatts when connected to the grid; prices
        are in nominal US dollars. All values in this report are illustrative.""",
    )


def make_report(out: Path) -> Path:
    path = out / "solar-market-report-2024.pdf"
    meta = {
        "Title": REPORT_TITLE,
        "Author": "Meridian Energy Research (fictional)",
        "CreationDate": FIXED_DATE,
    }
    with PdfPages(path, metadata=meta) as pdf:
        for fig in _report_pages():
            pdf.savefig(fig)
    return path


# --- 2. the transit infographic (raster figures) ----------------------------------------------------
def _icon(ax: Axes, kind: str, cx: float, cy: float) -> None:
    """Flat icons made of patches, like the pictograms of a real infographic."""
    c = "white"
    if kind == "people":
        for dx, s in ((-5, 0.8), (5, 0.8), (0, 1.0)):
            ax.add_patch(Circle((cx + dx, cy + 3.2 * s), 1.9 * s, color=c))
            ax.add_patch(
                FancyBboxPatch(
                    (cx + dx - 2.6 * s, cy - 4.5 * s),
                    5.2 * s,
                    5.5 * s,
                    boxstyle="round,pad=0.3,rounding_size=1.5",
                    color=c,
                )
            )
    elif kind == "bus":
        ax.add_patch(FancyBboxPatch((cx - 8, cy - 3.5), 16, 9, boxstyle="round,pad=0.2,rounding_size=1.2", color=c))
        for i in range(4):
            ax.add_patch(Rectangle((cx - 7 + i * 3.6, cy + 1), 2.8, 3, color="#17324d"))
        for wheel in (-4.5, 4.5):
            ax.add_patch(Circle((cx + wheel, cy - 3.8), 1.7, color="#17324d", ec=c, lw=2))
    elif kind == "bike":
        for wheel in (-5.0, 5.0):
            ax.add_patch(Circle((cx + wheel, cy - 1.5), 3.6, fill=False, ec=c, lw=3))
        ax.plot([cx - 5, cx - 1, cx + 3, cx + 5], [cy - 1.5, cy + 3.5, cy + 3.5, cy - 1.5], color=c, lw=3)
        ax.plot([cx - 1, cx + 1, cx - 5], [cy + 3.5, cy - 1.5, cy - 1.5], color=c, lw=3)
    elif kind == "clock":
        ax.add_patch(Circle((cx, cy), 6, fill=False, ec=c, lw=3))
        ax.plot([cx, cx], [cy, cy + 4.3], color=c, lw=3)
        ax.plot([cx, cx + 3], [cy, cy - 1.2], color=c, lw=3)


def make_infographic_png() -> bytes:
    """A 1200x780 px infographic; every word in it exists only as pixels."""
    fig = Figure(figsize=(8, 5.2), dpi=150, facecolor="#17324d")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 65)
    ax.axis("off")
    ax.text(50, 59, "RIVERTON TRANSIT 2024 AT A GLANCE", color="white", fontsize=20, weight="bold", ha="center")
    ax.text(50, 54.5, "A year on the network in four numbers", color="#9cc3e6", fontsize=11, ha="center")
    palette = ["#e4572e", "#29a19c", "#f3a712", "#7e5bef"]
    for i, (number, label, icon) in enumerate(TRANSIT_TILES):
        x0 = 2.5 + i * 24.2
        ax.add_patch(FancyBboxPatch((x0, 8), 22, 41, boxstyle="round,pad=0,rounding_size=2", color=palette[i]))
        _icon(ax, icon, x0 + 11, 38)
        ax.text(x0 + 11, 23, number, color="white", fontsize=25, weight="bold", ha="center")
        ax.text(x0 + 11, 18.5, label, color="white", fontsize=9.5, ha="center", va="top", linespacing=1.3)
    ax.text(
        50, 3, "Source: Riverton Regional Transit Authority, fiscal year 2024", color="#9cc3e6", fontsize=8, ha="center"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor(), metadata={"Software": None})
    return buf.getvalue()


def make_photo_jpeg(width: int = 1000, height: int = 560) -> bytes:
    """A photo-like dusk view of an estuary, a skyline and a tram bridge, with blur and sensor noise."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(2024)
    shore = int(0.55 * height)
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    t = np.clip(yy / shore, 0, 1)[..., None]
    img = (1 - t) * np.array([70, 60, 140]) + t * np.array([250, 150, 80])  # dusk sky, purple to orange
    glow = np.exp(-(((xx - 0.7 * width) ** 2 + (yy - 0.47 * height) ** 2) / (2 * 55.0**2)))[..., None]
    img = img + glow * np.array([255, 200, 120]) * 0.8
    ridge = 0.42 * height + 25 * np.sin(xx / 90) + 12 * np.sin(xx / 23 + 1)
    hills = (yy > ridge) & (yy < shore)
    img[hills] = img[hills] * 0.35 + np.array([40, 40, 70]) * 0.65
    x = 0
    while x < width:  # skyline: blocks of random width and height, a few lit windows
        w, top = int(rng.integers(18, 55)), shore - int(rng.integers(15, 110))
        img[top:shore, x : x + w] = [25, 22, 40]
        lit = rng.random((max(1, (shore - top) // 9), max(1, w // 8))) > 0.8
        for r, c in zip(*np.nonzero(lit), strict=True):
            img[top + 4 + r * 9 : top + 8 + r * 9, x + 3 + c * 8 : x + 7 + c * 8] = [255, 214, 140]
        x += w + int(rng.integers(0, 8))
    for row in range(shore, height):  # the water mirrors the sky, broken up by ripples
        shift = int(rng.normal(0, 2 + (row - shore) / 25))
        img[row] = np.roll(img[2 * shore - row - 1], shift, axis=0) * 0.5 + np.array([10, 15, 35])
    deck = int(0.7 * height)
    img[deck : deck + 9] = [28, 24, 36]  # bridge deck, piers and the tram crossing it
    for px in range(40, width, 160):
        img[deck:height, px : px + 14] = [28, 24, 36]
    img[deck - 26 : deck - 2, 330:610] = [196, 38, 42]
    for wx in range(340, 600, 22):
        img[deck - 21 : deck - 12, wx : wx + 14] = [255, 232, 170]
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(photo, dtype=float) + rng.normal(0, 4, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _textbox(page: Any, rect: tuple[float, float, float, float], text: str, **kw: object) -> None:
    rest = page.insert_textbox(rect, " ".join(text.split()), **{"fontsize": 10.5, "lineheight": 1.35, **kw})
    if rest < 0:  # overflow silently drops text in PyMuPDF; a generator must not ship half a paragraph
        raise ValueError(f"text does not fit in {rect}: {text[:40]!r}")


def make_transit_pdf(out: Path) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for number in (1, 2):
        page = doc.new_page(width=595, height=842)
        page.insert_text(
            (50, 40), "Riverton Regional Transit Authority | Annual Report to Riders", fontsize=8, color=(0.4, 0.4, 0.4)
        )
        page.insert_text((515, 815), f"Page {number} of 2", fontsize=8, color=(0.4, 0.4, 0.4))
    p1, p2 = doc[0], doc[1]
    _textbox(p1, (50, 60, 545, 100), "Annual Report to Riders 2024", fontsize=22, fontname="hebo")
    _textbox(
        p1,
        (50, 100, 545, 160),
        """Thank you for riding with us. This report looks back on a year in
        which we rebuilt our timetable around frequent routes, modernised the fleet and made streets safer
        for people who walk and cycle. The graphic below sums up the year; the full accounts and route
        statistics are published on our open data portal.""",
    )
    p1.insert_image(pymupdf.Rect(50, 170, 545, 492), stream=make_infographic_png())
    _textbox(
        p1,
        (50, 497, 545, 515),
        "Figure 1: Our network in 2024, summarised in one graphic.",
        fontsize=9,
        fontname="heit",
    )
    _textbox(
        p1,
        (50, 530, 545, 740),
        """Fares were frozen for the third year running, and the monthly pass
        now caps what a rider pays in any calendar month. Customer complaints fell by a fifth, mostly
        thanks to real-time arrival displays installed at the two hundred most used stops. Our priority for
        the coming year is reliability on the cross-town routes, where roadworks caused long gaps between
        vehicles during the autumn. Accessibility upgrades continue at the remaining stations without
        step-free access, funded by the regional infrastructure grant approved in May.""",
    )
    _textbox(p2, (50, 60, 545, 100), "Looking ahead: the Harbour Line", fontsize=20, fontname="hebo")
    _textbox(
        p2,
        (50, 100, 545, 160),
        """Construction of the Harbour Line, a 6.4 km tram extension from
        Central Station to the new waterfront district, reached its halfway mark in December. Its centrepiece
        is a 420-metre bridge across the Riverton estuary, shown below as it will look when services start
        in autumn 2026.""",
    )
    p2.insert_image(pymupdf.Rect(50, 170, 545, 447), stream=make_photo_jpeg())
    _textbox(
        p2,
        (50, 452, 545, 480),
        """Photo: artist's rendering of the Harbour Line tram bridge over
        the Riverton estuary at dusk, with the city skyline behind.""",
        fontsize=9,
        fontname="heit",
    )
    _textbox(
        p2,
        (50, 495, 545, 700),
        """The line will run every six minutes at peak times and connect
        with eleven bus routes. Trams will be built locally and draw power from the city's solar canopy
        programme. During construction, the waterfront bus routes are diverted via Mill Street; the
        diversion ends when the bridge deck is complete next summer.""",
    )
    doc.set_metadata(
        {
            "title": "Riverton Transit Annual Report to Riders 2024",
            "author": "Riverton Regional Transit Authority (fictional)",
            "creationDate": "D:20250314090000Z",
            "modDate": "D:20250314090000Z",
            "producer": "caprl-index examples/make_docs.py",
        }
    )
    path = out / "city-transit-infographic.pdf"
    doc.save(path, garbage=4, deflate=True, no_new_id=True)
    return path


# --- 3. the quarterly review deck (native chart, picture, table) ------------------------------------
def make_store_map_png() -> bytes:
    """A stylised store map (raster) for the picture slide."""
    rng = np.random.default_rng(7)
    fig = Figure(figsize=(8, 4.6), dpi=120, facecolor="#f4f1ea")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 58)
    ax.axis("off")
    ax.text(3, 53, "Northwind store network, December 2024", fontsize=15, weight="bold", color="#333333")
    spots = [(14, 40), (12, 16), (37, 28), (61, 30), (86, 35)]
    colors = ["#2e7d32", "#f9a825", "#8d6e63", "#1565c0", "#c62828"]
    for (name, n), (x, y), col in zip(STORES.items(), spots, colors, strict=True):
        ax.add_patch(Circle((x, y), 9, color=col, alpha=0.18))
        pts = rng.normal((x, y), 2.8, (n, 2))
        ax.scatter(pts[:, 0], pts[:, 1], s=28, color=col, edgecolor="white", zorder=3)
        ax.text(x, y - 10, f"{name}\n{n} stores", ha="center", va="top", fontsize=9.5, color="#333333")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor(), metadata={"Software": None})
    return buf.getvalue()


def _place(shape: Any, left: float, top: float, width: float, height: float) -> None:
    """Move a placeholder: the default template's layouts are laid out for 4:3, the deck is 16:9."""
    from pptx.util import Inches

    shape.left, shape.top, shape.width, shape.height = (Inches(v) for v in (left, top, width, height))


def _slide_title(slide: Any, text: str) -> None:
    _place(slide.shapes.title, 0.6, 0.35, 12.1, 1.0)
    slide.shapes.title.text = text


def make_deck(out: Path) -> Path:
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE, XL_LEGEND_POSITION
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    title_only = prs.slide_layouts[5]

    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    _slide_title(s1, "Northwind Outdoor Gear: Q4 2024 Quarterly Review")
    _place(s1.shapes.title, 0.9, 2.2, 11.5, 1.6)
    _place(s1.placeholders[1], 0.9, 4.0, 11.5, 1.2)
    s1.placeholders[1].text = "Board meeting, 15 January 2025 · all figures illustrative"

    s2 = prs.slides.add_slide(title_only)
    _slide_title(s2, "Revenue by quarter and product line")
    data = CategoryChartData()
    data.categories = QUARTERS
    for name, values in REVENUE_MUSD.items():
        data.add_series(name, values)
    chart = s2.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(0.8), Inches(1.6), Inches(11.7), Inches(5.4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Revenue by quarter per product line, 2024 (USD millions)"
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False
    plot = chart.plots[0]
    plot.has_data_labels = True
    plot.data_labels.number_format, plot.data_labels.number_format_is_linked = "0.0", False
    plot.data_labels.font.size = Pt(11)
    chart.value_axis.has_title = True
    chart.value_axis.axis_title.text_frame.text = "Revenue (USD millions)"
    chart.category_axis.has_title = True
    chart.category_axis.axis_title.text_frame.text = "Quarter"

    s3 = prs.slides.add_slide(title_only)
    _slide_title(s3, "Store network at year end")
    s3.shapes.add_picture(io.BytesIO(make_store_map_png()), Inches(0.8), Inches(1.5), width=Inches(8.6))
    note = s3.shapes.add_textbox(Inches(9.7), Inches(2.0), Inches(3.1), Inches(3.5)).text_frame
    note.word_wrap = True
    note.text = "Six stores opened in 2024, four of them in the Pacific Northwest."
    note.add_paragraph().text = "Two leases in the Midwest end in 2025 and will not be renewed."
    for para in note.paragraphs:
        para.font.size = Pt(18)

    s4 = prs.slides.add_slide(prs.slide_layouts[1])
    _slide_title(s4, "Q4 highlights and risks")
    _place(s4.placeholders[1], 0.8, 1.5, 11.7, 5.5)
    body = s4.placeholders[1].text_frame
    bullets = [
        (0, "Record quarter: revenue of USD 35.8 M, up 10% on Q3"),
        (1, "Apparel grew 23% on the winter jacket launch"),
        (1, "Footwear passed USD 11 M for the first time"),
        (0, "Equipment fell to USD 6.1 M after the tent recall in November"),
        (0, "Risks for 2025"),
        (1, "Freight costs from Asia up 30% since October"),
        (1, "Warm winter forecast could slow ski equipment sales"),
    ]
    for i, (level, text) in enumerate(bullets):
        para = body.paragraphs[0] if i == 0 else body.add_paragraph()
        para.text, para.level = text, level
        para.font.size = Pt(24 - 4 * level)

    s5 = prs.slides.add_slide(title_only)
    _slide_title(s5, "Key metrics, Q3 vs Q4 2024")
    rows = [
        ("Metric", "Q3 2024", "Q4 2024"),
        ("Gross margin", "47.5%", "48.9%"),
        ("Online share of sales", "31%", "36%"),
        ("Active customers", "412,000", "455,000"),
        ("Net promoter score", "52", "58"),
        ("Employees", "1,180", "1,240"),
    ]
    table = s5.shapes.add_table(len(rows), 3, Inches(2.2), Inches(1.8), Inches(8.9), Inches(4.2)).table
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value

    props = prs.core_properties
    props.title, props.author = "Northwind Q4 2024 Quarterly Review", "Northwind Finance (fictional)"
    props.created = props.modified = props.last_printed = FIXED_DATE.replace(tzinfo=None)
    props.last_modified_by, props.revision = "caprl-index examples", 1
    buf = io.BytesIO()
    prs.save(buf)
    path = out / "quarterly-review.pptx"
    path.write_bytes(_reproducible_zip(buf.getvalue()))
    return path


def _reproducible_zip(blob: bytes) -> bytes:
    """Rewrite an OOXML zip with fixed timestamps, recursing into the chart's embedded workbook.

    python-pptx stamps zip entries with the current time and XlsxWriter writes it into the
    workbook's docProps/core.xml; both are pinned to FIXED_DATE.
    """
    stamp = FIXED_DATE.timetuple()[:6]
    fixed = FIXED_DATE.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith(".xlsx"):
                data = _reproducible_zip(data)
            elif info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fixed, data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=stamp), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="output folder (default: examples/docs)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    _setup_matplotlib()
    for path in (make_report(args.out), make_transit_pdf(args.out), make_deck(args.out)):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
