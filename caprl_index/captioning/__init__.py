"""Captioning: figures → text, with CapRL (CapRL-3B, CapRL 2.0) on an OpenAI-compatible server, or OCR text.

    captioner = await open_captioner(settings, warn=log.warning)   # auto | vllm | ocr | none
    caption = await captioner.caption(figure)                      # never raises for one figure
    await captioner.aclose()

The server may be vLLM, SGLang, llama.cpp's llama-server, Ollama or another OpenAI-compatible one
(:mod:`~caprl_index.captioning.dialects`); the model family (Qwen2.5-VL for CapRL-3B, Qwen3-VL for CapRL 2.0)
sets how an image's visual-token budget converts to pixels (:mod:`~caprl_index.captioning.budget`).

Errors: :class:`~caprl_index.errors.CaptionerUnavailable` from ``open_captioner`` (``vllm`` mode) and
``caption_image`` only; a figure that cannot be captioned keeps its OCR text (``source="ocr"``, ``error``).
"""

from caprl_index.captioning.base import Captioner, CaptionStats, NoneCaptioner, OcrCaptioner
from caprl_index.captioning.budget import ImageBudget
from caprl_index.captioning.cache import CaptionCache
from caprl_index.captioning.cleanup import strip_self_praise
from caprl_index.captioning.discovery import ServerProbe, probe_servers
from caprl_index.captioning.factory import ImageCaption, caption_image, caption_image_report, open_captioner
from caprl_index.captioning.families import FAMILIES, Family, detect_family
from caprl_index.captioning.prompt import PROMPT_VERSION, prompt_version
from caprl_index.captioning.setup import CaptionSetup, describe_budget, describe_server, resolve_setup
from caprl_index.captioning.vllm import VLLMCaptioner

__all__ = [
    "FAMILIES",
    "PROMPT_VERSION",
    "CaptionCache",
    "CaptionSetup",
    "CaptionStats",
    "Captioner",
    "Family",
    "ImageBudget",
    "ImageCaption",
    "NoneCaptioner",
    "OcrCaptioner",
    "ServerProbe",
    "VLLMCaptioner",
    "caption_image",
    "caption_image_report",
    "describe_budget",
    "describe_server",
    "detect_family",
    "open_captioner",
    "probe_servers",
    "prompt_version",
    "resolve_setup",
    "strip_self_praise",
]
