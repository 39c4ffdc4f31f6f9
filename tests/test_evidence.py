"""Evidence: the crop and page images behind every hit are kept, match their payload, are shown with the
box where the bbox says, and leave with the file versions that referred to them."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from caprl_index.cli import main
from caprl_index.config import Settings
from caprl_index.evidence import thumbnail_uri
from caprl_index.evidence.show import BOX_COLOUR, BOX_WIDTH
from caprl_index.testing.index import all_points
from tests.test_figures import report_pdf

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def image_root() -> Path:
    return Settings().index_dir / "images"


def images_on_disk() -> set[str]:
    root = image_root()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    report_pdf(folder / "report.pdf")
    return folder


def test_every_point_refers_to_images_that_exist_and_match(docs: Path, capsys) -> None:
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    points = [p.payload for p in all_points(Settings())]
    figures = [p for p in points if p["kind"] != "text"]
    assert figures and all(p["page_image_uri"] for p in points)
    for p in figures:
        data = (image_root() / p["image_uri"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["image_sha256"]  # the exact crop, content-addressed
        Image.open(io.BytesIO(data)).load()
    for p in points:
        for uri in (p["page_image_uri"], thumbnail_uri(p["page_image_uri"])):
            with Image.open(image_root() / uri) as page:
                assert page.format == "WEBP" and page.width > 0
        with Image.open(image_root() / p["page_image_uri"]) as page:
            assert abs(page.width / page.height - p["page_width"] / p["page_height"]) < 0.01
    status = json.loads(run(capsys, "status", "--json")[1])
    assert status["images"]["kept"] and status["images"]["bytes"] == sum(
        (image_root() / k).stat().st_size for k in images_on_disk()
    )


def test_show_draws_the_box_where_the_bbox_says(docs: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    code, out, _ = run(capsys, "search", "revenue by region", "--kind", "figure", "--json", "-k", "1")
    hit = json.loads(out)[0]
    # report_pdf draws the chart at (120, 220)-(480, 490) on page 1 with its caption below it.
    assert hit["page"] == 1 and hit["figure_type"] == "chart"
    x0, y0, x1, y1 = hit["bbox"]
    assert 100 <= x0 < x1 <= 500 and 210 <= y0 < y1 <= 530  # the chart's placement plus its caption
    assert (x1 - x0) * (y1 - y0) > 0.5 * 360 * 270
    png = tmp_path / "hit.png"
    code, out, _ = run(capsys, "show", hit["id"], "--out", str(png))
    assert code == 0 and out.strip() == str(png)
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        sx, sy = rgb.width / hit["page_width"], rgb.height / hit["page_height"]
        mid_x, mid_y = (x0 + x1) / 2 * sx, (y0 + y1) / 2 * sy
        edge = BOX_WIDTH / 2
        for px, py in (
            (mid_x, y0 * sy - edge),
            (mid_x, y1 * sy + edge),
            (x0 * sx - edge, mid_y),
            (x1 * sx + edge, mid_y),
        ):
            assert rgb.getpixel((round(px), round(py))) == BOX_COLOUR, (px, py)
        assert rgb.getpixel((round(mid_x), round(mid_y))) != BOX_COLOUR  # the figure itself is not painted over
    crop = tmp_path / "crop.png"
    assert run(capsys, "show", hit["id"], "--crop", "--out", str(crop))[0] == 0
    with Image.open(crop) as image, Image.open(image_root() / _uri_of(hit["id"])) as kept:
        assert image.size == kept.size
    code, out, _ = run(capsys, "show", str(docs / "report.pdf"), "--page", "1", "--out", str(tmp_path / "p1.png"))
    assert code == 0 and Path(out.strip()).is_file()
    code, _, err = run(capsys, "show", "not-a-hit-id")
    assert code == 2 and "not a point id" in err


def _uri_of(point_id: str) -> str:
    return next(p.payload["image_uri"] for p in all_points(Settings()) if p.id == point_id)


def test_delete_prune_and_new_versions_remove_what_they_replace(docs: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    first = images_on_disk()
    assert any(k.startswith("crops/") for k in first) and any(k.startswith("pages/") for k in first)
    # A copy of the same file elsewhere shares its images: deleting one keeps them for the other.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(docs / "report.pdf", other / "copy.pdf")
    assert run(capsys, "ingest", str(other), "--captioner", "none")[0] == 0
    assert images_on_disk() == first
    assert run(capsys, "delete", str(other))[0] == 0
    assert images_on_disk() == first
    # A new version: its pages replace the old version's; unchanged crops stay.
    report_pdf(docs / "report.pdf", pages=2)
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    second = images_on_disk()
    assert {k.split("/")[1] for k in second if k.startswith("pages/")} == {
        p.payload["file_sha256"] for p in all_points(Settings())
    }
    referenced = {p.payload["image_uri"] for p in all_points(Settings()) if p.payload["image_uri"]}
    assert {k for k in second if k.startswith("crops/")} == referenced
    (docs / "report.pdf").unlink()
    code, _, err = run(capsys, "ingest", str(docs), "--prune", "--captioner", "none")
    assert code == 0 and "1 pruned" in err and images_on_disk() == set()


def test_images_can_be_turned_off_and_show_renders_from_the_source(
    docs: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPRL_KEEP_IMAGES", "false")
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    points = all_points(Settings())
    assert images_on_disk() == set() and all(p.payload["page_image_uri"] is None for p in points)
    figure = next(p for p in points if p.payload["kind"] == "figure")
    assert run(capsys, "show", figure.id, "--out", str(tmp_path / "f.png"))[0] == 0  # rendered from report.pdf
    code, _, err = run(capsys, "show", figure.id, "--crop")
    assert code == 2 and "no kept crop" in err


def test_deck_without_libreoffice_has_no_page_image_and_says_so(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import EXAMPLES

    monkeypatch.setenv("CAPRL_SOFFICE", "none")
    deck = tmp_path / "deck.pptx"
    shutil.copy(EXAMPLES / "quarterly-review.pptx", deck)
    assert run(capsys, "ingest", str(deck), "--captioner", "none")[0] == 0
    points = all_points(Settings())
    assert points and all(p.payload["page_image_uri"] is None for p in points)
    code, _, err = run(capsys, "show", points[0].id)
    assert code == 2 and "read without LibreOffice" in err
