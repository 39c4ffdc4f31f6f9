"""The request CapRL's authors use, and the version string that identifies it.

A caption depends on the prompt text, the sampling settings and the image the model sees, which is set by
the model family and the visual-token budget. ``prompt_version`` hashes all of them, so the cache and the
index can tell captions written under other settings apart (and refresh them). For Qwen2.5-VL the image
part is written as the pixel budget it always was, so captions made before budgets were counted in
tokens keep their version.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from caprl_index.captioning.dialects import REPETITION_PENALTY, sampling
from caprl_index.captioning.families import DEFAULT_FAMILY, QWEN25_VL, Family, settings_family
from caprl_index.config import DEFAULT_IMAGE_TOKENS, PROMPT, Settings

_DEFAULT_MAX_TOKENS = 2048


def _version(temperature: float, top_p: float, max_tokens: int, family: Family, tokens: int) -> str:
    spec: dict[str, Any] = {
        "prompt": PROMPT,
        "temperature": temperature,
        "top_p": top_p,
        "repetition_penalty": REPETITION_PENALTY,
        "max_tokens": max_tokens,
        "max_pixels": family.pixel_budget(tokens),
    }
    if family is not QWEN25_VL:
        spec |= {"family": family.name, "image_tokens": tokens}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return f"caprl-v1-{digest[:12]}"


PROMPT_VERSION: str = _version(1.0, 1.0, _DEFAULT_MAX_TOKENS, DEFAULT_FAMILY, DEFAULT_IMAGE_TOKENS)
"""The version of the default prompt and settings (see :func:`prompt_version` for configured ones)."""


def prompt_version(settings: Settings, family: Family | None = None) -> str:
    """The version string for ``settings`` captioned by ``family`` (default: the family settings imply)."""
    family = family or settings_family(settings)
    return _version(settings.temperature, settings.top_p, settings.max_tokens, family, settings.image_token_budget)


def data_url(image: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def chat_request(settings: Settings, image: bytes, mime: str, kind: str = "vllm") -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions``, exactly as the model card's example sends it.

    Only the sampling fields' names follow the server ``kind`` (``repetition_penalty`` is a vLLM extension,
    llama.cpp calls it ``repeat_penalty``); see :mod:`caprl_index.captioning.dialects`.
    """
    content = [
        {"type": "image_url", "image_url": {"url": data_url(image, mime)}},
        {"type": "text", "text": PROMPT},
    ]
    return {
        "model": settings.vllm_model,
        "messages": [{"role": "user", "content": content}],
        **sampling(kind, settings),
    }
