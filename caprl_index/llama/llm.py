"""`OpenAICompatibleLLM`: a LlamaIndex chat LLM on any OpenAI-compatible server, images included.

vLLM, SGLang, llama.cpp and Ollama serve vision models (Qwen2.5-VL, CapRL-3B itself) behind
`/v1/chat/completions`. `llama-index-llms-openai-like` would do, but pins an `openai` release older than the
one caprl-index needs, so this is the small part of it a RAG app uses: `chat`/`achat` with text and image
blocks (images sent as base64 data URLs, read from their files when sent), `complete`, streaming text.

    llm = OpenAICompatibleLLM(model="Qwen/Qwen2.5-VL-7B-Instruct", base_url="http://localhost:8000/v1")
    engine = RetrieverQueryEngine.from_args(CapRLRetriever(), llm=llm, multimodal=True)
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback


class OpenAICompatibleLLM(CustomLLM):
    """A chat model served over the OpenAI protocol; the key, if the server wants one, is `api_key`."""

    model: str = Field(description="Model name the server serves.")
    base_url: str = Field(description="OpenAI-compatible base URL ending in /v1.")
    max_tokens: int = Field(default=512, description="Tokens per answer.")
    temperature: float = Field(default=0.1, description="Sampling temperature.")
    context_window: int = Field(default=8192, description="The served model's context length.")
    timeout: float = Field(default=120.0, description="Seconds per request.")
    _api_key: str = PrivateAttr()
    _client: Any = PrivateAttr(default=None)
    _aclient: Any = PrivateAttr(default=None)

    def __init__(self, *, api_key: str | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._api_key = api_key or "EMPTY"  # vLLM without --api-key accepts any key

    @classmethod
    def class_name(cls) -> str:
        return "OpenAICompatibleLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window, num_output=self.max_tokens, model_name=self.model, is_chat_model=True
        )

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        reply = self._sync().chat.completions.create(**self._request(messages))
        return _chat_response(reply)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        reply = await self._async().chat.completions.create(**self._request(messages))
        return _chat_response(reply)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        reply = self._sync().chat.completions.create(**self._request([ChatMessage(content=prompt)]))
        return CompletionResponse(text=reply.choices[0].message.content or "", raw=reply.model_dump())

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        events = self._sync().chat.completions.create(**self._request([ChatMessage(content=prompt)]), stream=True)
        text = ""
        for event in events:
            delta = (event.choices[0].delta.content or "") if event.choices else ""
            text += delta
            yield CompletionResponse(text=text, delta=delta)

    def _request(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [openai_message(m) for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _sync(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=1)
        return self._client

    def _async(self) -> Any:
        if self._aclient is None:
            from openai import AsyncOpenAI

            self._aclient = AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=1
            )
        return self._aclient


def openai_message(message: ChatMessage) -> dict[str, Any]:
    """A LlamaIndex message as an OpenAI chat message: text parts, and images as data URLs (or their URL)."""
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
    role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _image_url(block: ImageBlock) -> str:
    if block.url is not None and not block.path and not block.image:
        return str(block.url)
    data = block.resolve_image().read()  # from the file now: nodes carry paths, not bytes
    mime = block.image_mimetype or _sniff(data)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def _chat_response(reply: Any) -> ChatResponse:
    text = reply.choices[0].message.content or ""
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=reply.model_dump())
