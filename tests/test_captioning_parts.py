"""The captioner's parts on their own: self-praise stripping, image fitting, the shared SQLite cache."""

from __future__ import annotations

import io
import multiprocessing
from pathlib import Path

import pytest

from caprl_index.captioning import CaptionCache, strip_self_praise
from caprl_index.captioning.images import fit_image, halve_pixels, image_size
from caprl_index.models import Caption
from caprl_index.testing.figures import image_bytes

BODY = "## Overview\nA bar chart of revenue by region.\n\n## Details\n- North: 40%\n- South: 60%"


@pytest.mark.parametrize(
    "tail",
    [
        "I hope this description helps!",
        "This description captures every element of the figure, so a text-only model can answer any question.",
        "Overall, this detailed description provides a comprehensive understanding of the image.",
        "---\n\nThis comprehensive breakdown should allow anyone to understand the chart. Let me know if you "
        "need more.",
        "In summary, the above description covers all visual elements.",
    ],
)
def test_trailing_self_praise_is_stripped(tail: str) -> None:
    assert strip_self_praise(f"{BODY}\n\n{tail}") == BODY


def test_praise_at_the_end_of_the_last_line_is_stripped() -> None:
    assert strip_self_praise(BODY + ". I hope this helps!") == BODY + "."


@pytest.mark.parametrize(
    "text",
    [
        BODY + "\n\nOverall, the chart shows the South ahead of the North.",
        BODY + "\n\nThe caption below the chart reads 'Source: IMF'.",
        "This description field in the form is empty.",  # only paragraph: never emptied
    ],
)
def test_content_is_kept(text: str) -> None:
    assert strip_self_praise(text) == text


def _image(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)).save(out, fmt)
    return out.getvalue()


def test_image_within_budget_is_sent_unchanged() -> None:
    png = image_bytes(100, 80)
    assert fit_image(png, 10_000) == (png, "image/png")
    jpeg = image_bytes(100, 80, fmt="JPEG")
    assert fit_image(jpeg, 10_000) == (jpeg, "image/jpeg")


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [
        ("PNG", "RGB", "image/png"),
        ("JPEG", "RGB", "image/jpeg"),
        ("TIFF", "RGB", "image/jpeg"),
        ("WEBP", "RGBA", "image/png"),
        ("PNG", "RGBA", "image/png"),
    ],
)
def test_big_images_shrink_to_the_budget(fmt: str, mode: str, mime: str) -> None:
    data, got = fit_image(_image(fmt, (1600, 900), mode), 100_000)
    width, height = image_size(data)
    assert got == mime and width * height <= 100_000
    assert width / height == pytest.approx(16 / 9, rel=0.02)


def test_halving_halves_pixels_and_keeps_format() -> None:
    data, mime = halve_pixels(image_bytes(400, 300))
    width, height = image_size(data)
    assert mime == "image/png" and width * height <= 60_000 and width * height > 55_000


def _fill(path: str, worker: int) -> None:
    cache = CaptionCache(Path(path))
    for i in range(100):
        caption = Caption(text=f"w{worker} {i}", source="vllm", model="caprl", prompt_version="v")
        cache.put(f"{worker}-{i}", "caprl", caption)
    cache.close()


def test_cache_is_shared_by_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "captions.sqlite"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_fill, args=(str(path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    cache = CaptionCache(path)
    assert len(cache) == 300
    hit = cache.get("2-7", "caprl", "v")
    assert hit is not None and hit.text == "w2 7" and hit.cached and hit.source == "vllm"
    assert cache.get("2-7", "caprl", "other-version") is None
    assert cache.get("2-7", "other-model", "v") is None


def test_only_vllm_captions_are_cached(tmp_path: Path) -> None:
    cache = CaptionCache(tmp_path / "c.sqlite")
    cache.put("a", "caprl", Caption(text="ocr words", source="ocr", prompt_version="v", error="down"))
    cache.put("b", "caprl", Caption(text="", source="vllm", prompt_version="v"))
    assert len(cache) == 0
