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

# Per family: the side of one visual token (patch x merge) and the Hugging Face processor's pixel range.
# Qwen2.5-VL: 14 px patches merged 2x2; CapRL-3B accepts up to 12.8 M pixels by default (the reason an
# unscaled scan overflows --max-model-len). Qwen3-VL: 16 px patches merged 2x2, size.shortest_edge /
# longest_edge = 65,536 / 16,777,216 px. Written out here, not imported from the client, so that a
# mistake in the client's arithmetic shows up as a disagreement with this server.
FAMILY_GRID = {"qwen2.5-vl": (28, 3136, 12_845_056), "qwen3-vl": (32, 65_536, 16_777_216), "generic": (28, 1, 2**40)}
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


def prompt_tokens(image: DecodedImage | None, text: str, kind: str = "vllm", family: str = "qwen2.5-vl") -> int:
    """Prompt tokens as the server counts them: visual tokens + text + chat template."""
    visual = visual_tokens(image.width, image.height, kind, family) if image is not None else 0
    return visual + text_tokens(text)


def text_tokens(text: str) -> int:
    return len(text.split()) + CHAT_TEMPLATE_TOKENS


def visual_tokens(width: int, height: int, kind: str, family: str) -> int:
    """Visual tokens of a width x height image after the server's resizes."""
    side, low, high = FAMILY_GRID[family]
    if family == "generic":
        return -(-width * height // PIXELS_PER_TOKEN)
    if kind == "sglang":  # processors/qwen_vl.py: its own resize to 28 px multiples first, for every Qwen-VL
        height, width = _resize(height, width, 28, 4 * 28 * 28, 16384 * 28 * 28)
    elif kind == "llama.cpp":  # clip.cpp: set_limit_image_tokens(8, 4096)
        low, high = 8 * side * side, 4096 * side * side
    elif kind == "ollama":  # llm/llama_server.go: --image-min-tokens 1024
        low, high = 1024 * side * side, 4096 * side * side
    height, width = _resize(height, width, side, low, high)
    return (height // side) * (width // side)


def _resize(height: int, width: int, side: int, low: int, high: int) -> tuple[int, int]:
    """transformers' smart_resize (llama.cpp's calc_size_preserved_ratio does the same)."""
    h, w = max(side, round(height / side) * side), max(side, round(width / side) * side)
    if h * w > high:
        beta = math.sqrt(height * width / high)
        h, w = max(side, math.floor(height / beta / side) * side), max(side, math.floor(width / beta / side) * side)
    elif h * w < low:
        beta = math.sqrt(low / (height * width))
        h, w = math.ceil(height * beta / side) * side, math.ceil(width * beta / side) * side
    return h, w


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
