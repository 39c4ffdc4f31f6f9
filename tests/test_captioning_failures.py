"""The captioner when vLLM misbehaves: down, dying, slow, 5xx, malformed, empty, 400s; retries and fallback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from caprl_index.captioning import OcrCaptioner, VLLMCaptioner, open_captioner, probe_servers
from caprl_index.config import Settings
from caprl_index.errors import CaptionerUnavailable
from caprl_index.models import Caption, Figure
from caprl_index.testing import FakeVLLM
from caprl_index.testing.figures import figures, image_bytes, make_figure


def _settings(tmp_path: Path, *urls: str, **values: Any) -> Settings:
    values.setdefault("max_retries", 3)
    return Settings(vllm_url=list(urls), qdrant_path=tmp_path / "index" / "qdrant", **values)


def _free_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def _run(settings: Settings, figs: list[Figure]) -> tuple[list[Caption], Any, list[str]]:
    warnings: list[str] = []
    captioner = await open_captioner(settings, warn=warnings.append, backoff_s=0.01)
    try:
        captions = await asyncio.gather(*(captioner.caption(f) for f in figs))
    finally:
        await captioner.aclose()
    return list(captions), captioner, warnings


def _caption(settings: Settings, fig: Figure) -> Caption:
    return asyncio.run(_run(settings, [fig]))[0][0]


def test_server_down_at_start_auto_warns_once_and_uses_ocr(tmp_path: Path) -> None:
    url = _free_url()
    captions, captioner, warnings = asyncio.run(_run(_settings(tmp_path, url), figures(3)))
    assert isinstance(captioner, OcrCaptioner)
    assert [c.text for c in captions] == ["ocr 0", "ocr 1", "ocr 2"]
    assert all(c.source == "ocr" for c in captions)
    assert len(warnings) == 1
    assert url in warnings[0] and "OCR text" in warnings[0] and "re-captions" in warnings[0]


def test_server_down_at_start_vllm_mode_raises_naming_the_url(tmp_path: Path) -> None:
    url = _free_url()
    with pytest.raises(CaptionerUnavailable, match="--captioner vllm") as info:
        asyncio.run(_run(_settings(tmp_path, url, captioner="vllm"), figures(1)))
    assert url in str(info.value) and "CAPRL_VLLM_URL" in str(info.value)


def test_wrong_model_name_and_api_key_are_explained(tmp_path: Path) -> None:
    with FakeVLLM(model="other") as other, FakeVLLM(api_key="k") as locked:
        probes = asyncio.run(probe_servers(_settings(tmp_path, other.url, locked.url)))
        keyed = asyncio.run(probe_servers(_settings(tmp_path, locked.url, vllm_api_key="k")))
    assert [p.ok for p in probes] == [False, False]
    assert probes[0].models == ["other"] and "CAPRL_VLLM_MODEL" in (probes[0].error or "")
    assert "CAPRL_VLLM_API_KEY" in (probes[1].error or "")
    assert keyed[0].ok and keyed[0].models == ["caprl"] and keyed[0].latency_s > 0


def test_server_dying_mid_run_falls_back_then_next_run_recaptions(tmp_path: Path) -> None:
    figs = figures(6)
    srv = FakeVLLM().start()
    settings = _settings(tmp_path, srv.url, max_retries=1)

    async def first_run() -> list[Caption]:
        captioner = await open_captioner(settings, warn=lambda _: None, backoff_s=0.01)
        done = [await captioner.caption(f) for f in figs[:3]]
        srv.stop()  # killed: listening socket and open keep-alive connections gone
        done += await asyncio.gather(*(captioner.caption(f) for f in figs[3:]))
        await captioner.aclose()
        return done

    try:
        first = asyncio.run(first_run())
        assert [c.source for c in first] == ["vllm"] * 3 + ["ocr"] * 3
        assert all(c.error and srv.url in c.error for c in first[3:])
        assert [c.text for c in first[3:]] == ["ocr 3", "ocr 4", "ocr 5"]
        srv.start()  # back on the same port
        srv.reset()
        second, _, _ = asyncio.run(_run(settings, figs))
    finally:
        srv.stop()
    assert all(c.source == "vllm" for c in second)
    assert [c.cached for c in second] == [True] * 3 + [False] * 3
    assert len(srv.chat_requests) == 3  # exactly the OCR ones were sent again


def test_slow_server_times_out_retries_then_falls_back(tmp_path: Path) -> None:
    with FakeVLLM(hang_s=5) as srv:
        srv.fail_next("hang", 3)
        settings = _settings(tmp_path, srv.url, request_timeout=0.3, max_retries=2)
        captions, captioner, _ = asyncio.run(_run(settings, figures(1)))
    caption = captions[0]
    assert caption.source == "ocr" and caption.text == "ocr 0"
    assert "request_timeout" in (caption.error or "") and "3 attempts" in (caption.error or "")
    assert (captioner.stats.requests, captioner.stats.retries, captioner.stats.failures) == (3, 2, 1)


def test_one_timeout_then_success(tmp_path: Path) -> None:
    with FakeVLLM(hang_s=5) as srv:
        srv.fail_next("hang")
        caption = _caption(_settings(tmp_path, srv.url, request_timeout=1.0), figures(1)[0])
    assert caption.source == "vllm"


@pytest.mark.parametrize("failure", ["500", "503", "malformed", "empty", "drop"])
def test_transient_failures_are_retried(tmp_path: Path, failure: str) -> None:
    with FakeVLLM() as srv:
        srv.fail_next(failure, 2)  # type: ignore[arg-type]
        captions, captioner, _ = asyncio.run(_run(_settings(tmp_path, srv.url), figures(1)))
        assert [r.outcome for r in srv.chat_requests] == [failure, failure, "ok"]
    assert captions[0].source == "vllm" and captions[0].text
    assert captioner.stats.retries == 2


@pytest.mark.parametrize("failure", ["500", "empty"])
def test_persistent_failure_keeps_ocr_text_never_an_empty_caption(tmp_path: Path, failure: str) -> None:
    with FakeVLLM() as srv:
        srv.fail_next(failure, 10)  # type: ignore[arg-type]
        captions, captioner, _ = asyncio.run(_run(_settings(tmp_path, srv.url, max_retries=2), figures(1)))
        assert len(srv.chat_requests) == 3
        srv.reset()
        # Failures are not cached: the next run asks again.
        again, _, _ = asyncio.run(_run(_settings(tmp_path, srv.url), figures(1)))
    assert captions[0] == Caption(text="ocr 0", source="ocr", error=captions[0].error)
    assert captions[0].error and (failure in captions[0].error)
    assert captioner.stats.failures == 1 and captioner.stats.by_source == {"ocr": 1}
    assert again[0].source == "vllm" and not again[0].cached


@pytest.mark.parametrize(
    ("fmt", "style"),
    [("new", "decoder-prompt"), ("new", "input-length"), ("old", "max-context"), ("new", "max-context")],
)
def test_context_overflow_is_answered_once_with_a_smaller_image(tmp_path: Path, fmt: str, style: str) -> None:
    # 700x700 px = 625 visual tokens + the prompt: over a 600-token context. The server does not say its
    # context (advertise_context=False), so the client cannot fit the image beforehand: the 400 decides.
    fig = make_figure(image_bytes(700, 700, seed=3))
    server = FakeVLLM(max_model_len=600, advertise_context=False, error_format=fmt, context_error=style)  # type: ignore[arg-type]
    with server as srv:
        caption = _caption(_settings(tmp_path, srv.url, max_tokens=64), fig)
        first, second = srv.chat_requests
    assert (first.status, second.status) == (400, 200)
    assert second.visual_tokens <= first.visual_tokens // 2
    assert caption.source == "vllm" and "image id" in caption.text


@pytest.mark.parametrize("fmt", ["new", "old"])
def test_context_overflow_twice_gives_up_after_one_smaller_try(tmp_path: Path, fmt: str) -> None:
    with FakeVLLM(error_format=fmt) as srv:  # type: ignore[arg-type]
        srv.fail_next("context", 5)
        caption = _caption(_settings(tmp_path, srv.url), make_figure(image_bytes(200, 200)))
        assert len(srv.chat_requests) == 2
    error = caption.error or ""
    assert caption.source == "ocr" and ("maximum model length" in error or "maximum context length" in error)
    assert "also with the image halved" in error


@pytest.mark.parametrize("fmt", ["new", "old"])
def test_plain_400_is_not_retried(tmp_path: Path, fmt: str) -> None:
    with FakeVLLM(error_format=fmt) as srv:  # type: ignore[arg-type]
        srv.fail_next("400")
        caption = _caption(_settings(tmp_path, srv.url), figures(1)[0])
        assert len(srv.chat_requests) == 1
    assert caption.source == "ocr" and "HTTP 400" in (caption.error or "") and "top_p" in (caption.error or "")


def test_two_urls_one_dead_all_succeed_on_the_live_one(tmp_path: Path) -> None:
    dead = _free_url()
    with FakeVLLM(latency_s=0.02) as live:
        settings = _settings(tmp_path, dead, live.url)
        captions, captioner, warnings = asyncio.run(_run(settings, figures(12)))
        assert len(live.chat_requests) == 12
    assert all(c.source == "vllm" for c in captions)
    assert isinstance(captioner, VLLMCaptioner) and captioner.urls == [live.url]
    assert len(warnings) == 1 and dead in warnings[0]


def test_url_dying_after_probe_is_avoided(tmp_path: Path) -> None:
    with FakeVLLM(latency_s=0.02) as live:
        doomed = FakeVLLM().start()
        settings = _settings(tmp_path, doomed.url, live.url, max_retries=2)

        async def run() -> tuple[list[Caption], VLLMCaptioner]:
            captioner = await open_captioner(settings, warn=lambda _: None, backoff_s=0.01)
            assert isinstance(captioner, VLLMCaptioner)
            doomed.stop()
            captions = await asyncio.gather(*(captioner.caption(f) for f in figures(20)))
            await captioner.aclose()
            return list(captions), captioner

        captions, captioner = asyncio.run(run())
        assert len(live.chat_requests) == 20
    assert all(c.source == "vllm" for c in captions)
    # Only the first wave can reach the dead URL before it is marked down.
    assert captioner.stats.by_url.get(doomed.url, 0) <= 10


def test_dead_server_drops_connections_and_figures_keep_ocr_text(tmp_path: Path) -> None:
    with FakeVLLM() as srv:
        settings = _settings(tmp_path, srv.url, max_retries=1)

        async def run() -> list[Caption]:
            captioner = await open_captioner(settings, warn=lambda _: None, backoff_s=0.01)
            srv.dead = True  # accepts, then hangs up without a response
            captions = await asyncio.gather(*(captioner.caption(f) for f in figures(3)))
            await captioner.aclose()
            return list(captions)

        captions = asyncio.run(run())
        srv.dead = False
        again, _, _ = asyncio.run(_run(settings, figures(3)))
    assert [c.source for c in captions] == ["ocr"] * 3
    assert [c.source for c in again] == ["vllm"] * 3
    assert all("Connection error" in (c.error or "") for c in captions)
