"""The vLLM servers: probing them (``GET /v1/models``) and choosing one per request.

``AsyncOpenAI`` clients per URL (one per 16 requests in flight), created on first use, with the
SDK's own retries off (the captioner retries with its own backoff and failover). A request goes to the
least-loaded healthy URL; a URL that refused a connection is avoided for ``down_s`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from caprl_index.config import Settings

if TYPE_CHECKING:
    import openai

PROBE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
CONNECTIONS_PER_CLIENT = 16


@dataclass(frozen=True)
class ServerProbe:
    """What one URL answered to ``GET /models``."""

    url: str
    ok: bool  # reachable and lists the configured model
    models: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    error: str | None = None


def api_key(settings: Settings) -> str:
    # vLLM without --api-key ignores the header; the SDK insists on some key.
    return settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else "EMPTY"


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building one costs ~0.15 s (loading the CA bundle); every client shares it.
    import httpx2

    return httpx2.create_ssl_context()


def make_client(url: str, settings: Settings, timeout: float) -> openai.AsyncOpenAI:
    """An SDK client for one URL, with the SDK's retries off (the captioner retries itself)."""
    import openai

    limit = openai.Timeout(timeout, connect=min(CONNECT_TIMEOUT_S, timeout))
    http = openai.DefaultAsyncHttpxClient(timeout=limit, verify=_ssl_context())
    return openai.AsyncOpenAI(base_url=url, api_key=api_key(settings), timeout=limit, max_retries=0, http_client=http)


def describe_error(exc: BaseException) -> str:
    """A short reason, with the socket-level cause of a connection error."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and type(exc).__name__ in ("APIConnectionError", "APITimeoutError"):
        return f"{exc} ({type(cause).__name__}: {cause})".replace(" ()", "")
    return f"{type(exc).__name__}: {exc}"


async def probe_servers(settings: Settings) -> list[ServerProbe]:
    """Ask every configured URL which models it serves (concurrently)."""
    return list(await asyncio.gather(*(_probe(url, settings) for url in settings.vllm_url)))


async def _probe(url: str, settings: Settings) -> ServerProbe:
    import openai

    start = time.perf_counter()
    try:
        async with make_client(url, settings, PROBE_TIMEOUT_S) as client:
            page = await client.models.list()
            models = [m.id for m in page.data]
    except openai.AuthenticationError:
        reason = "401 Unauthorized: set CAPRL_VLLM_API_KEY to the key vLLM was started with (--api-key)"
        return ServerProbe(url, False, latency_s=time.perf_counter() - start, error=reason)
    except (openai.OpenAIError, ValueError) as exc:
        return ServerProbe(url, False, latency_s=time.perf_counter() - start, error=describe_error(exc))
    latency = time.perf_counter() - start
    if settings.vllm_model in models:
        return ServerProbe(url, True, models, latency)
    reason = (
        f"serves {models or 'no models'}, not {settings.vllm_model!r}: set CAPRL_VLLM_MODEL to the served "
        f"name, or start vLLM with --served-model-name {settings.vllm_model}"
    )
    return ServerProbe(url, False, models, latency, reason)


class Server:
    """One URL: its clients, requests in flight, and when it may be tried again after a refusal.

    httpcore scans every pooled connection on each request (a third of the client's CPU at 64 in
    flight, measured), so the URL's connections are split over several small clients.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self._settings = settings
        self._shards = max(1, -(-settings.max_concurrency // CONNECTIONS_PER_CLIENT))
        self._clients: list[openai.AsyncOpenAI] = []
        self._loads: list[int] = []
        self.in_flight = 0
        self.down_until = 0.0

    def open(self) -> None:
        if not self._clients:
            timeout = self._settings.request_timeout
            self._clients = [make_client(self.url, self._settings, timeout) for _ in range(self._shards)]
            self._loads = [0] * self._shards

    @contextmanager
    def lease(self) -> Iterator[openai.AsyncOpenAI]:
        """The least busy client of this URL, counted as in flight while held."""
        self.open()
        index = min(range(self._shards), key=self._loads.__getitem__)
        self._loads[index] += 1
        self.in_flight += 1
        try:
            yield self._clients[index]
        finally:
            self._loads[index] -= 1
            self.in_flight -= 1

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        await asyncio.gather(*(client.close() for client in clients))


class ServerPool:
    """Chooses the least-loaded healthy server for each request."""

    def __init__(self, urls: list[str], settings: Settings, *, down_s: float = 10.0) -> None:
        self.servers = [Server(url, settings) for url in urls]
        self.down_s = down_s
        self._turn = itertools.count()  # breaks ties so equal loads rotate

    def healthy(self) -> list[Server]:
        now = time.monotonic()
        return [s for s in self.servers if s.down_until <= now]

    def pick(self) -> Server:
        candidates = self.healthy()
        if not candidates:  # all refused recently: try the one that has rested longest
            return min(self.servers, key=lambda s: s.down_until)
        turn = next(self._turn)
        n = len(candidates)
        return min(enumerate(candidates), key=lambda p: (p[1].in_flight, (p[0] - turn) % n))[1]

    def warm(self) -> None:
        """Create the clients now rather than under the first burst of requests."""
        for server in self.servers:
            server.open()

    def mark_down(self, server: Server) -> None:
        server.down_until = time.monotonic() + self.down_s

    def mark_up(self, server: Server) -> None:
        server.down_until = 0.0

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in self.servers))
