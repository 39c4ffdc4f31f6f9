"""The vLLM captioner: bounded, retried, cached, de-duplicated chat completions.

vLLM never answers 429 and queues without limit, so the client bounds its own in-flight requests
(one semaphore over all URLs). Failures are classified once, in :func:`_classify`:

    _Failure                 the figure keeps its OCR text (never raised to the caller)
    ├── _Retry               timeout, connection error, 5xx, malformed or empty answer: backoff, retry
    └── _ContextTooLong      400 for context length: re-sent once with half the pixels
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from caprl_index.captioning import images
from caprl_index.captioning.base import CaptionStats
from caprl_index.captioning.cache import CaptionCache
from caprl_index.captioning.cleanup import strip_self_praise
from caprl_index.captioning.prompt import chat_request, prompt_version
from caprl_index.captioning.servers import Server, ServerPool, describe_error
from caprl_index.config import Settings
from caprl_index.models import Caption, Figure

BACKOFF_MAX_S = 30.0


class _Failure(Exception):
    """Captioning this image failed; the message is the reason recorded on the caption."""


class _Retry(_Failure):
    def __init__(self, reason: str, *, failover: bool = False) -> None:
        super().__init__(reason)
        self.failover = failover  # another server may answer at once: no need to wait


class _ContextTooLong(_Failure):
    pass


class VLLMCaptioner:
    """Captions figures with CapRL served by vLLM at one or more URLs."""

    def __init__(
        self,
        settings: Settings,
        urls: list[str],
        *,
        cache: CaptionCache | None = None,
        backoff_s: float = 0.5,
        down_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.prompt_version = prompt_version(settings)
        self.stats = CaptionStats()
        self._pool = ServerPool(urls, settings, down_s=down_s)
        self._cache = cache
        self._backoff_s = backoff_s
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._in_flight: dict[str, asyncio.Future[Caption]] = {}

    def warm(self) -> None:
        """Set up the HTTP clients before the first figure arrives."""
        self._pool.warm()

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self._pool.servers]

    async def caption(self, figure: Figure) -> Caption:
        """The figure's caption: from the cache, a request in flight for the same image, or vLLM."""
        key = figure.image_sha256
        cached = self._cache.get(key, self.settings.vllm_model, self.prompt_version) if self._cache else None
        if cached is not None:
            self.stats.cache_hits += 1
            return self.stats.count(cached)
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._caption_image(figure))
            self._in_flight[key] = future
            future.add_done_callback(lambda _: self._in_flight.pop(key, None))
        else:
            self.stats.dedup_hits += 1
        try:
            # shield: a cancelled caller must not cancel the request other figures wait on.
            return self.stats.count(await asyncio.shield(future))
        except _Failure as exc:
            self.stats.failures += 1
            return self.stats.count(Caption(text=figure.ocr_text, source="ocr", error=str(exc)))

    async def aclose(self) -> None:
        for future in list(self._in_flight.values()):
            future.cancel()  # callers gone (cancelled): nobody will read these
        await self._pool.aclose()
        if self._cache is not None:
            self._cache.close()

    async def _caption_image(self, figure: Figure) -> Caption:
        image, mime = await self._fit(figure)
        caption = await self._request_with_retries(image, mime)
        if self._cache is not None:
            self._cache.put(figure.image_sha256, self.settings.vllm_model, caption)
        return caption

    async def _fit(self, figure: Figure) -> tuple[bytes, str]:
        try:
            # The header, not Figure.mime, decides the data URL's type.
            width, height, mime = images.peek(figure.image)
            if width * height <= self.settings.max_pixels and mime:
                return figure.image, mime
            return await asyncio.to_thread(images.fit_image, figure.image, self.settings.max_pixels)
        except (OSError, ValueError) as exc:
            raise _Failure(f"cannot read the figure image: {exc}") from exc

    async def _request_with_retries(self, image: bytes, mime: str) -> Caption:
        attempt, shrunk = 0, False
        while True:
            try:
                return await self._request(image, mime)
            except _ContextTooLong as exc:
                if shrunk:
                    raise _Failure(f"{exc} (also with the image halved)") from None
                image, mime = await asyncio.to_thread(images.halve_pixels, image)
                shrunk = True
            except _Retry as exc:
                if attempt >= self.settings.max_retries:
                    raise _Failure(f"{exc} (after {attempt + 1} attempts)") from None
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(self._delay(attempt, exc))

    def _delay(self, attempt: int, exc: _Retry) -> float:
        if exc.failover and self._pool.healthy():
            return 0.0
        # Exponential backoff with jitter, so retries from many figures do not arrive together.
        return min(BACKOFF_MAX_S, self._backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    async def _request(self, image: bytes, mime: str) -> Caption:
        import httpx2

        async with self._slots:
            server = self._pool.pick()
            self.stats.requests += 1
            self.stats.by_url[server.url] = self.stats.by_url.get(server.url, 0) + 1
            start = time.perf_counter()
            with server.lease() as client:
                try:
                    # The SDK's typed create() transforms the params and builds pydantic models from the
                    # answer: half the client's CPU per request, measured. Posting the finished body and
                    # reading the JSON sends and parses the same thing, with the SDK's errors and auth.
                    response = await client.post(
                        "/chat/completions", cast_to=httpx2.Response, body=chat_request(self.settings, image, mime)
                    )
                    answer = response.json()
                except Exception as exc:
                    raise self._classify(exc, server) from exc
        self._pool.mark_up(server)
        return self._to_caption(answer, server, time.perf_counter() - start)

    def _classify(self, exc: Exception, server: Server) -> Exception:
        import openai

        where = server.url
        if isinstance(exc, openai.APITimeoutError):
            return _Retry(f"{where}: no answer within {self.settings.request_timeout:g}s (request_timeout)")
        if isinstance(exc, openai.APIConnectionError):
            self._pool.mark_down(server)
            return _Retry(f"{where}: {describe_error(exc)}", failover=True)
        if isinstance(exc, openai.APIStatusError):
            message = _error_message(exc.body) or str(exc)
            if exc.status_code >= 500:
                return _Retry(f"{where}: HTTP {exc.status_code}: {message}")
            if exc.status_code == 400 and "context length" in message.lower():
                return _ContextTooLong(f"{where}: {message}")
            return _Failure(f"{where}: HTTP {exc.status_code}: {message}")
        if isinstance(exc, ValueError | openai.APIResponseValidationError):
            return _Retry(f"{where}: malformed response: {exc}")
        return exc  # a bug, not a server failure: let it surface

    def _to_caption(self, answer: Any, server: Server, latency: float) -> Caption:
        try:
            choice = answer["choices"][0]
            raw, finish = choice["message"]["content"], choice.get("finish_reason")
            usage = answer.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            served = answer.get("model") or self.settings.vllm_model
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise _Retry(f"{server.url}: malformed response: {type(exc).__name__}: {exc}") from None
        text = strip_self_praise(raw) if isinstance(raw, str) else ""
        if not text:
            raise _Retry(f"{server.url}: empty caption (finish_reason={finish})")
        caption = Caption(
            text=text,
            source="vllm",
            model=str(served),
            prompt_version=self.prompt_version,
            truncated=finish == "length",
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            latency_s=latency,
        )
        self._record(caption)
        return caption

    def _record(self, caption: Caption) -> None:
        self.stats.truncated += caption.truncated
        self.stats.prompt_tokens += caption.prompt_tokens
        self.stats.completion_tokens += caption.completion_tokens
        self.stats.latencies.append(caption.latency_s)


def _error_message(body: object) -> str:
    """The message of vLLM's error body, new (``{"error": {...}}``) or old (``{"object": "error"}``)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", ""))
        return str(inner)
    return str(body or "")
