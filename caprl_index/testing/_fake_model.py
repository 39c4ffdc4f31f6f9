"""What the fake vLLM "model" answers: a caption derived from the image it received, and token counts.

Captions name the image (size, mean colour, the first 12 hex digits of its sha256) so a test can tell which
figure each caption came from. Some end with CapRL-style self-praise, to exercise the client's stripping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
import time
from dataclasses import dataclass
from typing import Any

# Qwen2.5-VL: 14 px patches merged 2x2, so one visual token per 28x28 pixels; its processor accepts up
# to 12.8 M pixels by default (the reason an unscaled scan overflows --max-model-len).
PIXELS_PER_TOKEN = 28 * 28
MODEL_MAX_PIXELS = 12_845_056
CHAT_TEMPLATE_TOKENS = 20

SELF_PRAISE = (
    "I hope this description helps!",
    "This description captures every element of the figure, so that a text-only model can answer "
    "any question about it.",
    "Overall, this detailed description provides a comprehensive understanding of the image.",
)


@dataclass(frozen=True)
class DecodedImage:
    """An image taken from a data URL."""

    mime: str
    data: bytes
    sha256: str
    width: int
    height: int
    mean_rgb: tuple[int, int, int]


class ImageError(ValueError):
    """The request's image cannot be read (vLLM answers 400)."""


def decode_data_url(url: str) -> DecodedImage:
    """Decode ``data:<mime>;base64,<payload>`` and measure the image."""
    from PIL import Image, ImageStat

    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise ImageError("Only base64 data URLs are supported by this fake server.")
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (binascii.Error, OSError, ValueError) as exc:
        raise ImageError(f"Failed to load image: {exc}") from exc
    r, g, b = (round(v) for v in ImageStat.Stat(rgb).mean)
    sha = hashlib.sha256(data).hexdigest()
    return DecodedImage(head[5:-7], data, sha, rgb.width, rgb.height, (r, g, b))


def prompt_tokens(image: DecodedImage | None, text: str) -> int:
    """Estimate prompt tokens the way Qwen2.5-VL counts them (visual tokens + text + template)."""
    visual = 0
    if image is not None:
        pixels = image.width * image.height
        scale = min(1.0, math.sqrt(MODEL_MAX_PIXELS / pixels)) if pixels else 1.0
        rows = max(1, round(image.height * scale / 28))
        cols = max(1, round(image.width * scale / 28))
        visual = rows * cols
    return visual + len(text.split()) + CHAT_TEMPLATE_TOKENS


def caption_for(image: DecodedImage, *, words: tuple[int, int], self_praise: str) -> str:
    """The caption for an image: markdown whose length (in words = tokens) depends on the image."""
    seed = int(image.sha256[:8], 16)
    lo, hi = words
    target = lo + (seed % max(1, hi - lo + 1))
    sha12 = image.sha256[:12]
    r, g, b = image.mean_rgb
    lines = [
        "## Overview",
        f"A figure of {image.width}x{image.height} pixels; mean colour ({r}, {g}, {b}); image id {sha12}.",
        "",
        "## Details",
    ]
    count = len(" ".join(lines).split())
    index = 1
    while count < target:
        bullet = f"- Element {index} of image {sha12} is drawn in shades near ({r}, {g}, {b})."
        lines.append(bullet)
        count += len(bullet.split())
        index += 1
    if _wants_praise(self_praise, seed):
        lines += ["", SELF_PRAISE[seed % len(SELF_PRAISE)]]
    return "\n".join(lines)


def _wants_praise(mode: str, seed: int) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    return seed % 2 == 0


def truncate_tokens(text: str, max_tokens: int) -> tuple[str, int, bool]:
    """Cut ``text`` to ``max_tokens`` tokens (one word = one token); returns text, tokens, truncated."""
    words = list(re.finditer(r"\S+", text))
    if len(words) <= max_tokens:
        return text, len(words), False
    return text[: words[max_tokens - 1].end()], max_tokens, True


def length_error(prompt_tokens: int, max_tokens: int, max_model_len: int, error_format: str) -> str | None:
    """vLLM's message when a request does not fit the context, else None."""
    if prompt_tokens > max_model_len:
        if error_format == "new":
            return f"Input length ({prompt_tokens}) exceeds model's maximum context length ({max_model_len})."
        return (
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens} tokens in the messages, Please reduce the length of the messages."
        )
    if prompt_tokens + max_tokens > max_model_len:
        return (
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum context "
            f"length is {max_model_len} tokens and your request has {prompt_tokens} input tokens "
            f"({max_tokens} > {max_model_len} - {prompt_tokens})."
        )
    return None


def completion_body(model: str, text: str, truncated: bool, usage: tuple[int, int]) -> dict[str, Any]:
    """A chat completion as vLLM's OpenAI server writes it."""
    prompt, completion = usage
    message: dict[str, Any] = {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": []}
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "stop_reason": None}
    return {
        "id": f"chatcmpl-{time.monotonic_ns():x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice | {"finish_reason": "length" if truncated else "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
    }
