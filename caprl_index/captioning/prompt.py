"""The request CapRL-3B's authors use, and the version string that identifies it.

A caption depends on the prompt text and the sampling settings; ``prompt_version`` hashes both, so the
cache and the index can tell captions written under other settings apart (and refresh them).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from caprl_index.config import DEFAULT_MAX_PIXELS, PROMPT, Settings

REPETITION_PENALTY = 1.0
_DEFAULT_MAX_TOKENS = 2048


def _version(temperature: float, top_p: float, max_tokens: int, max_pixels: int) -> str:
    spec = {
        "prompt": PROMPT,
        "temperature": temperature,
        "top_p": top_p,
        "repetition_penalty": REPETITION_PENALTY,
        "max_tokens": max_tokens,
        "max_pixels": max_pixels,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return f"caprl-v1-{digest[:12]}"


PROMPT_VERSION: str = _version(1.0, 1.0, _DEFAULT_MAX_TOKENS, DEFAULT_MAX_PIXELS)
"""The version of the default prompt and settings (see :func:`prompt_version` for configured ones)."""


def prompt_version(settings: Settings) -> str:
    """The version string for the prompt and sampling settings in ``settings``."""
    return _version(settings.temperature, settings.top_p, settings.max_tokens, settings.max_pixels)


def data_url(image: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def chat_request(settings: Settings, image: bytes, mime: str) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions``, exactly as the model card's example sends it.

    ``repetition_penalty`` is a vLLM extension: the body the SDK builds from ``extra_body``.
    """
    content = [
        {"type": "image_url", "image_url": {"url": data_url(image, mime)}},
        {"type": "text", "text": PROMPT},
    ]
    return {
        "model": settings.vllm_model,
        "messages": [{"role": "user", "content": content}],
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_tokens,
        "repetition_penalty": REPETITION_PENALTY,
    }
