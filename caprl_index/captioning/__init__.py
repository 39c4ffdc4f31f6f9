"""Captioning: figures → text, with CapRL-3B served by vLLM (OpenAI protocol), or OCR text as fallback.

    captioner = await open_captioner(settings, warn=log.warning)   # auto | vllm | ocr | none
    caption = await captioner.caption(figure)                      # never raises for one figure
    await captioner.aclose()

Errors: :class:`~caprl_index.errors.CaptionerUnavailable` from ``open_captioner`` (``vllm`` mode) and
``caption_image`` only; a figure that cannot be captioned keeps its OCR text (``source="ocr"``, ``error``).
"""

from caprl_index.captioning.base import Captioner, CaptionStats, NoneCaptioner, OcrCaptioner
from caprl_index.captioning.cache import CaptionCache
from caprl_index.captioning.cleanup import strip_self_praise
from caprl_index.captioning.factory import caption_image, open_captioner
from caprl_index.captioning.prompt import PROMPT_VERSION, prompt_version
from caprl_index.captioning.servers import ServerProbe, probe_servers
from caprl_index.captioning.vllm import VLLMCaptioner

__all__ = [
    "PROMPT_VERSION",
    "CaptionCache",
    "CaptionStats",
    "Captioner",
    "NoneCaptioner",
    "OcrCaptioner",
    "ServerProbe",
    "VLLMCaptioner",
    "caption_image",
    "open_captioner",
    "probe_servers",
    "prompt_version",
    "strip_self_praise",
]
