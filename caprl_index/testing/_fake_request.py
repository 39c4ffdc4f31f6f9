"""One chat request as the fake server saw it: the log record tests assert on, and parsing the body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caprl_index.testing import _fake_model as fm


@dataclass
class RequestRecord:
    """One chat request as the server saw it."""

    status: int  # 0 while in progress, and for a connection dropped unanswered
    outcome: str  # "ok", "length", or the failure it was answered with
    model: str | None = None
    prompt: str | None = None
    image_sha256: str | None = None
    image_size: tuple[int, int] | None = None  # (width, height)
    image_bytes: int = 0
    mime: str | None = None
    prompt_tokens: int = 0  # as the server counts them: visual + text
    visual_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None  # vLLM/SGLang's name
    repeat_penalty: float | None = None  # llama.cpp's name
    top_k: int | None = None
    min_p: float | None = None
    max_tokens: int | None = None
    error: str | None = None  # the error body answered, as sent
    body: dict[str, Any] = field(default_factory=dict, repr=False)


def parse_messages(body: dict[str, Any]) -> tuple[fm.DecodedImage, str]:
    """Find the image (data URL) and the text of the user turn."""
    image: fm.DecodedImage | None = None
    texts: list[str] = []
    for message in body["messages"]:
        content = message["content"]
        parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "image_url":
                url = part["image_url"] if isinstance(part["image_url"], str) else part["image_url"]["url"]
                image = fm.decode_data_url(url)
            elif part["type"] == "text":
                texts.append(part["text"])
    if image is None:
        raise ValueError("this fake CapRL server expects one image_url part")
    return image, "\n".join(texts)


def fill_record(
    record: RequestRecord, body: dict[str, Any], image: fm.DecodedImage, text: str, kind: str, family: str
) -> None:
    record.body, record.model, record.prompt = body, body.get("model"), text
    record.image_sha256, record.image_size = image.sha256, (image.width, image.height)
    record.image_bytes, record.mime = len(image.data), image.mime
    record.visual_tokens = fm.visual_tokens(image.width, image.height, kind, family)
    record.prompt_tokens = record.visual_tokens + fm.text_tokens(text)
    record.temperature, record.top_p = body.get("temperature"), body.get("top_p")
    record.repetition_penalty, record.repeat_penalty = body.get("repetition_penalty"), body.get("repeat_penalty")
    record.top_k, record.min_p = body.get("top_k"), body.get("min_p")
    record.max_tokens = body.get("max_tokens")
