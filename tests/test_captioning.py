"""The vLLM captioner against a real loopback server: request shape, cache, dedup, bounds, load spread."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from caprl_index.captioning import (
    PROMPT_VERSION,
    Captioner,
    VLLMCaptioner,
    caption_image,
    open_captioner,
    prompt_version,
)
from caprl_index.config import Settings
from caprl_index.models import Caption, Figure
from caprl_index.testing import FakeVLLM
from caprl_index.testing.figures import figures, image_bytes, make_figure


def _settings(tmp_path: Path, *urls: str, **values: Any) -> Settings:
    return Settings(vllm_url=list(urls), qdrant_path=tmp_path / "index" / "qdrant", **values)


async def _caption_all(settings: Settings, figs: list[Figure]) -> tuple[list[Caption], Captioner]:
    warnings: list[str] = []
    captioner = await open_captioner(settings, warn=warnings.append, backoff_s=0.01)
    try:
        captions = await asyncio.gather(*(captioner.caption(f) for f in figs))
    finally:
        await captioner.aclose()
    assert not warnings
    return list(captions), captioner


def test_request_shape_is_the_model_cards(tmp_path: Path) -> None:
    with FakeVLLM() as srv:
        fig = figures(1)[0]
        asyncio.run(_caption_all(_settings(tmp_path, srv.url), [fig]))
        record = srv.chat_requests[0]
    data_url = "data:image/png;base64," + base64.b64encode(fig.image).decode()
    assert record.body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": data_url},
                },
                {"type": "text", "text": "Please describe this image in detail."},
            ],
        }
    ]
    assert (record.temperature, record.top_p, record.repetition_penalty, record.max_tokens) == (1.0, 1.0, 1.0, 2048)
    assert record.model == "caprl" and record.mime == "image/png"
    assert record.image_sha256 == fig.image_sha256  # sent byte for byte: already within budget


def test_captions_come_from_their_own_figure(tmp_path: Path) -> None:
    figs = figures(5)
    with FakeVLLM(model="capRL-3B") as srv:
        captions, captioner = asyncio.run(_caption_all(_settings(tmp_path, srv.url, vllm_model="capRL-3B"), figs))
    for fig, cap in zip(figs, captions, strict=True):
        assert cap.source == "vllm" and cap.error is None and not cap.cached
        assert f"image id {fig.image_sha256[:12]}" in cap.text
        assert cap.model == "capRL-3B"
        assert cap.prompt_version == PROMPT_VERSION
        assert cap.prompt_tokens > 0 and cap.completion_tokens > 0 and cap.latency_s > 0
    assert captioner.stats.requests == 5 and captioner.stats.by_source == {"vllm": 5}


def test_self_praise_is_stripped_and_markdown_kept(tmp_path: Path) -> None:
    with FakeVLLM(self_praise="always") as srv:
        captions, _ = asyncio.run(_caption_all(_settings(tmp_path, srv.url), figures(6)))
    for cap in captions:
        assert cap.text.startswith("## Overview\n")
        assert "## Details\n- Element 1" in cap.text
        assert cap.text.rstrip().endswith(").")  # the last bullet, not the praise
        for praise in ("I hope", "This description", "Overall, this"):
            assert praise not in cap.text


def test_truncated_caption_is_kept_and_flagged(tmp_path: Path) -> None:
    with FakeVLLM() as srv:
        captions, captioner = asyncio.run(_caption_all(_settings(tmp_path, srv.url, max_tokens=16), figures(1)))
    assert captions[0].source == "vllm" and captions[0].truncated
    assert captions[0].completion_tokens == 16
    assert captioner.stats.truncated == 1


def test_second_run_hits_the_cache_without_a_request(tmp_path: Path) -> None:
    figs = figures(4)
    with FakeVLLM() as srv:
        settings = _settings(tmp_path, srv.url)
        first, _ = asyncio.run(_caption_all(settings, figs))
        srv.reset()
        second, captioner = asyncio.run(_caption_all(settings, figs))
        assert srv.chat_requests == []
        # Other sampling settings are another prompt version: the cache does not answer for them.
        asyncio.run(_caption_all(_settings(tmp_path, srv.url, max_tokens=1024), figs[:1]))
        assert len(srv.chat_requests) == 1
    assert [c.text for c in second] == [c.text for c in first]
    assert all(c.cached and c.source == "vllm" for c in second)
    assert captioner.stats.cache_hits == 4 and captioner.stats.requests == 0
    assert (tmp_path / "index" / "captions.sqlite").exists()


def test_identical_images_in_flight_are_captioned_once(tmp_path: Path) -> None:
    image = image_bytes(seed=7)
    figs = [make_figure(image, ocr_text=f"copy {i}", index=i) for i in range(5)]
    with FakeVLLM(latency_s=0.2) as srv:
        captions, captioner = asyncio.run(_caption_all(_settings(tmp_path, srv.url), figs))
        assert len(srv.chat_requests) == 1
    assert len({c.text for c in captions}) == 1 and captions[0].source == "vllm"
    assert captioner.stats.dedup_hits == 4


def test_in_flight_requests_stay_within_max_concurrency(tmp_path: Path) -> None:
    with FakeVLLM(latency_s=0.1) as srv:
        settings = _settings(tmp_path, srv.url, max_concurrency=3)
        captions, _ = asyncio.run(_caption_all(settings, figures(15)))
        stats = srv.stats()
    assert all(c.source == "vllm" for c in captions)
    assert 1 < stats["max_in_flight"] <= 3


def test_load_spreads_over_urls(tmp_path: Path) -> None:
    with FakeVLLM(latency_s=0.05) as a, FakeVLLM(latency_s=0.05) as b:
        captions, captioner = asyncio.run(_caption_all(_settings(tmp_path, a.url, b.url), figures(20)))
        counts = (len(a.chat_requests), len(b.chat_requests))
    assert all(c.source == "vllm" for c in captions)
    assert counts == (10, 10)
    assert captioner.stats.by_url == {a.url: 10, b.url: 10}


def test_big_images_are_downscaled_png_stays_png_photos_become_jpeg(tmp_path: Path) -> None:
    png = make_figure(image_bytes(1200, 900, seed=1), index=0)
    webp = make_figure(image_bytes(300, 200, seed=2, fmt="WEBP"), "image/webp", index=1)
    budget = 200_000  # CAPRL_MAX_PIXELS the old way: read as 200,000 // 784 = 255 Qwen2.5-VL tokens
    with FakeVLLM() as srv:
        captions, _ = asyncio.run(_caption_all(_settings(tmp_path, srv.url, max_pixels=budget), [png, webp]))
        records = sorted(srv.chat_requests, key=lambda r: r.image_bytes)
    assert all(c.source == "vllm" for c in captions)
    by_mime = {r.mime: r for r in records}
    big = by_mime["image/png"]
    width, height = big.image_size or (0, 0)
    # Resized the way Qwen2.5-VL's processor would: sides in whole 28 px tokens, so the server keeps it.
    assert width % 28 == 0 and height % 28 == 0 and width * height <= budget
    assert big.visual_tokens == (width // 28) * (height // 28) <= 255
    assert abs(width / height - 1200 / 900) <= 28 / height  # the aspect ratio, to within one token
    assert by_mime["image/jpeg"].image_size == (300, 200)  # within budget, but WebP is re-encoded


def test_prompt_version_tracks_settings(tmp_path: Path) -> None:
    base = _settings(tmp_path, "http://x/v1")
    assert prompt_version(base) == PROMPT_VERSION
    assert prompt_version(_settings(tmp_path, "http://x/v1", temperature=0.7)) != PROMPT_VERSION
    assert prompt_version(_settings(tmp_path, "http://x/v1", max_pixels=500_000)) != PROMPT_VERSION


def test_caption_image_smoke_test(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "chart.png"
    Image.new("RGB", (2000, 1000), (200, 10, 10)).save(path)
    with FakeVLLM() as srv:
        caption = asyncio.run(caption_image(path, _settings(tmp_path, srv.url, captioner="ocr")))
        record = srv.chat_requests[0]
    assert caption.source == "vllm" and "mean colour (200, 10, 10)" in caption.text
    width, height = record.image_size or (0, 0)
    assert width * height <= 1_003_520
    assert not (tmp_path / "index" / "captions.sqlite").exists()  # a smoke test bypasses the cache


def test_ocr_and_none_captioners_need_no_server(tmp_path: Path) -> None:
    fig = figures(1)[0]
    for mode, expected in (("ocr", Caption(text="ocr 0", source="ocr")), ("none", Caption(text="", source="none"))):
        settings = _settings(tmp_path, "http://127.0.0.1:9/v1", captioner=mode)
        captions, captioner = asyncio.run(_caption_all(settings, [fig]))
        assert captions == [expected]
        assert not isinstance(captioner, VLLMCaptioner)
