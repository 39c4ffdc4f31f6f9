"""The captioner: bounded, retried, cached, de-duplicated chat completions to OpenAI-compatible servers.

vLLM and SGLang never answer 429 and queue without limit, so the client bounds its own in-flight requests
(one semaphore over all URLs, and per URL the requests its server runs at once when it has fixed slots,
as llama.cpp and Ollama do). Each image is fitted to the run's :class:`ImageBudget` before it is sent;
failures are classified in :mod:`caprl_index.captioning.failures`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from typing import Any

from caprl_index.captioning import images
from caprl_index.captioning.base import CaptionStats
from caprl_index.captioning.cache import CaptionCache
from caprl_index.captioning.cleanup import strip_self_praise
from caprl_index.captioning.failures import ContextTooLong, Failure, Retry, classify
from caprl_index.captioning.prompt import chat_request, prompt_version
from caprl_index.captioning.servers import Server, ServerPool
from caprl_index.captioning.setup import CaptionSetup
from caprl_index.config import Settings
from caprl_index.models import Caption, Figure

BACKOFF_MAX_S = 30.0


class VLLMCaptioner:
    """Captions figures with CapRL served by vLLM, SGLang, llama.cpp, Ollama or another OpenAI-style server."""

    def __init__(
        self,
        settings: Settings,
        setup: CaptionSetup,
        *,
        cache: CaptionCache | None = None,
        backoff_s: float = 0.5,
        down_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.setup = setup
        self.prompt_version = prompt_version(settings, setup.family)
        self.stats = CaptionStats()
        servers = [Server(p.url, settings, kind=p.kind, capacity=setup.capacities.get(p.url)) for p in setup.probes]
        self._pool = ServerPool(servers, down_s=down_s)
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
        """The figure's caption: from the cache, a request in flight for the same image, or the server."""
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
        except Failure as exc:
            self.stats.failures += 1
            return self.stats.count(Caption(text=figure.ocr_text, source="ocr", error=str(exc)))

    async def aclose(self) -> None:
        for future in list(self._in_flight.values()):
            future.cancel()  # callers gone (cancelled): nobody will read these
        await self._pool.aclose()
        if self._cache is not None:
            self._cache.close()

    async def _caption_image(self, figure: Figure) -> Caption:
        image, mime = await self.fit(figure.image)
        caption = await self._request_with_retries(image, mime)
        if self._cache is not None:
            self._cache.put(figure.image_sha256, self.settings.vllm_model, caption)
        return caption

    async def fit(self, data: bytes, tokens: int | None = None) -> tuple[bytes, str]:
        """The image as a request carries it: unchanged when it fits the budget (``tokens`` lowers it)."""
        budget = self.setup.budget if tokens is None else dataclasses.replace(self.setup.budget, tokens=tokens)
        try:
            # The header, not Figure.mime, decides the data URL's type.
            width, height, mime = images.peek(data)
            if budget.fits(width, height) and mime:
                return data, mime
            size = (width, height) if budget.fits(width, height) else budget.target(width, height)
            return await asyncio.to_thread(images.resize, data, size)
        except (OSError, ValueError) as exc:
            raise Failure(f"cannot read the figure image: {exc}") from exc

    async def _request_with_retries(self, image: bytes, mime: str) -> Caption:
        attempt, shrunk = 0, False
        while True:
            try:
                return await self._request(image, mime)
            except ContextTooLong as exc:
                if shrunk:
                    raise Failure(f"{exc} (also with the image halved)") from None
                image, mime = await self.fit(image, tokens=max(4, self._cost(image) // 2))
                shrunk = True
            except Retry as exc:
                if attempt >= self.settings.max_retries:
                    raise Failure(f"{exc} (after {attempt + 1} attempts)") from None
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(self._delay(attempt, exc))

    def _cost(self, image: bytes) -> int:
        return self.setup.budget.cost(*images.image_size(image))

    def _delay(self, attempt: int, exc: Retry) -> float:
        if exc.failover and self._pool.healthy():
            return 0.0
        # Exponential backoff with jitter, so retries from many figures do not arrive together.
        return min(BACKOFF_MAX_S, self._backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    async def _request(self, image: bytes, mime: str) -> Caption:
        async with self._slots:
            server = await self._pool.acquire()
            try:
                answer, latency = await self._post(server, image, mime)
            finally:
                self._pool.release(server)
        self._pool.mark_up(server)
        return self._to_caption(answer, server, latency)

    async def _post(self, server: Server, image: bytes, mime: str) -> tuple[Any, float]:
        import httpx2

        self.stats.requests += 1
        self.stats.by_url[server.url] = self.stats.by_url.get(server.url, 0) + 1
        body = chat_request(self.settings, image, mime, server.kind)
        start = time.perf_counter()
        with server.client() as client:
            try:
                # The SDK's typed create() transforms the params and builds pydantic models from the
                # answer: half the client's CPU per request, measured. Posting the finished body and
                # reading the JSON sends and parses the same thing, with the SDK's errors and auth.
                response = await client.post("/chat/completions", cast_to=httpx2.Response, body=body)
                return response.json(), time.perf_counter() - start
            except Exception as exc:
                failure = classify(exc, server, self.settings.request_timeout, self.settings.vllm_model)
                if isinstance(failure, Retry) and failure.failover:
                    self._pool.mark_down(server)
                raise failure from exc

    def _to_caption(self, answer: Any, server: Server, latency: float) -> Caption:
        try:
            choice = answer["choices"][0]
            raw, finish = choice["message"]["content"], choice.get("finish_reason")
            usage = answer.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            served = answer.get("model") or self.settings.vllm_model
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise Retry(f"{server.url}: malformed response: {type(exc).__name__}: {exc}") from None
        text = strip_self_praise(raw) if isinstance(raw, str) else ""
        if not text:
            raise Retry(f"{server.url}: empty caption (finish_reason={finish})")
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
