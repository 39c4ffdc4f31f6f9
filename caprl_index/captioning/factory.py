"""Choosing the captioner for a run (``--captioner auto|vllm|ocr|none``) and captioning one image."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from caprl_index.captioning import images
from caprl_index.captioning.base import Captioner, NoneCaptioner, OcrCaptioner
from caprl_index.captioning.cache import CACHE_FILE, CaptionCache
from caprl_index.captioning.discovery import ServerProbe, probe_servers
from caprl_index.captioning.setup import CaptionSetup, resolve_setup
from caprl_index.captioning.vllm import VLLMCaptioner
from caprl_index.config import Settings
from caprl_index.errors import CaptionerUnavailable, CorruptFile
from caprl_index.models import Caption, Figure


async def open_captioner(
    settings: Settings,
    *,
    warn: Callable[[str], None],
    use_cache: bool = True,
    backoff_s: float = 0.5,
) -> Captioner:
    """The captioner that ``settings.captioner`` asks for; ``auto`` probes the servers and falls back to OCR.

    Raises :class:`CaptionerUnavailable` for ``vllm`` when no URL serves ``settings.vllm_model``.
    """
    if settings.captioner == "ocr":
        return OcrCaptioner()
    if settings.captioner == "none":
        return NoneCaptioner()
    probes = await probe_servers(settings)
    serving = [p.url for p in probes if p.ok]
    if not serving:
        if settings.captioner == "vllm":
            raise CaptionerUnavailable(_unavailable(settings, probes))
        warn(_fallback(settings, probes))
        return OcrCaptioner()
    if len(serving) < len(probes):
        failed = "; ".join(f"{p.url}: {p.error}" for p in probes if not p.ok)
        warn(f"captioning with {', '.join(serving)} only; not usable: {failed}")
    setup = resolve_setup(settings, probes)
    for warning in setup.warnings:
        warn(warning)
    cache = _open_cache(settings, warn) if use_cache else None
    captioner = VLLMCaptioner(settings, setup, cache=cache, backoff_s=backoff_s)
    captioner.warm()
    return captioner


def _open_cache(settings: Settings, warn: Callable[[str], None]) -> CaptionCache | None:
    path = settings.index_dir / CACHE_FILE
    try:
        return CaptionCache(path)
    except (OSError, sqlite3.Error) as exc:
        warn(f"caption cache {path} cannot be opened ({exc}); captions will not be cached this run")
        return None


def _tried(probes: list[ServerProbe]) -> str:
    return "\n".join(f"  {p.url}: {p.error}" for p in probes)


def _fallback(settings: Settings, probes: list[ServerProbe]) -> str:
    return (
        f"vLLM is not serving {settings.vllm_model!r} at any configured URL:\n{_tried(probes)}\n"
        "Figures are indexed with their OCR text for now (caption_source='ocr'). Start vLLM (for example "
        "`docker compose up vllm`; other servers: docs/caption-servers.md) and run `caprl-index ingest` again: "
        "it re-captions exactly those figures. Set CAPRL_VLLM_URL / --vllm-url if the server runs elsewhere, "
        "or --captioner ocr to silence this warning."
    )


def _unavailable(settings: Settings, probes: list[ServerProbe]) -> str:
    return (
        f"--captioner vllm: no configured URL serves model {settings.vllm_model!r}:\n{_tried(probes)}\n"
        "Start vLLM (`docker compose up vllm`, or `vllm serve <CapRL-3B> --served-model-name "
        f"{settings.vllm_model}`; llama.cpp, Ollama, SGLang: docs/caption-servers.md), point CAPRL_VLLM_URL / "
        "--vllm-url at it, or use --captioner auto to fall back to OCR text."
    )


@dataclass(frozen=True)
class ImageCaption:
    """``caprl-index caption``'s answer: the caption, and how the image was sent."""

    caption: Caption
    setup: CaptionSetup
    original_size: tuple[int, int]
    sent_size: tuple[int, int]
    visual_tokens: int  # what the sent image costs, counted the way the server counts


async def caption_image(path: Path, settings: Settings) -> Caption:
    """Caption one image file with the configured server (no cache): the ``caprl-index caption`` smoke test.

    Raises :class:`CaptionerUnavailable` when no URL serves the model or the request fails.
    """
    return (await caption_image_report(path, settings)).caption


async def caption_image_report(path: Path, settings: Settings) -> ImageCaption:
    """:func:`caption_image` with the family, budget and visual tokens of the request."""
    try:
        data = Path(path).read_bytes()
        original = images.image_size(data)
    except OSError as exc:
        raise CorruptFile(str(path), f"cannot read the image ({exc}); give a PNG, JPEG, TIFF or WebP file") from exc
    strict = settings.model_copy(update={"captioner": "vllm"})
    captioner = await open_captioner(strict, warn=lambda _: None, use_cache=False)
    if not isinstance(captioner, VLLMCaptioner):  # captioner="vllm" opens one or raises
        raise CaptionerUnavailable(f"no caption server for {path}")
    try:
        sent, mime = await captioner.fit(data)
        caption = await captioner.caption(_page_figure(sent, mime))
    finally:
        await captioner.aclose()
    if caption.source != "vllm":
        raise CaptionerUnavailable(f"the caption server could not caption {path}: {caption.error}")
    size = images.image_size(sent)
    return ImageCaption(caption, captioner.setup, original, size, captioner.setup.budget.cost(*size))


def _page_figure(data: bytes, mime: str) -> Figure:
    return Figure(
        kind="page",
        figure_type="other",
        bbox=None,
        image=data,
        mime=mime,
        image_sha256=hashlib.sha256(data).hexdigest(),
        region_index=0,
    )
