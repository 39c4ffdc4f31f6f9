"""The caption servers' HTTP clients, and choosing one per request.

``AsyncOpenAI`` clients per URL (one per 16 requests in flight), created on first use, with the SDK's own
retries off (the captioner retries with its own backoff and failover). A request goes to the least-loaded
healthy URL that has room: a URL may run a fixed number of requests at once (llama.cpp's slots, Ollama's
``OLLAMA_NUM_PARALLEL``), and a request sent past that only waits in the server's queue, where its wait
counts against the timeout while another URL may be idle. A URL that refused a connection is avoided
for ``down_s`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from caprl_index.config import Settings

if TYPE_CHECKING:
    import openai

PROBE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
CONNECTIONS_PER_CLIENT = 16


def api_key(settings: Settings) -> str:
    # A server without --api-key ignores the header; the SDK insists on some key.
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


class Server:
    """One URL: its clients, requests in flight, its capacity, and when it may be tried after a refusal.

    httpcore scans every pooled connection on each request (a third of the client's CPU at 64 in
    flight, measured), so the URL's connections are split over several small clients.
    """

    def __init__(self, url: str, settings: Settings, *, kind: str = "generic", capacity: int | None = None) -> None:
        self.url = url
        self.kind = kind
        self.capacity = capacity  # requests at once that pay off (None: the server queues and batches)
        self._settings = settings
        wanted = capacity or settings.max_concurrency
        self._shards = max(1, -(-min(wanted, settings.max_concurrency) // CONNECTIONS_PER_CLIENT))
        self._clients: list[openai.AsyncOpenAI] = []
        self._loads: list[int] = []
        self.in_flight = 0
        self.down_until = 0.0

    @property
    def has_room(self) -> bool:
        return self.capacity is None or self.in_flight < self.capacity

    def open(self) -> None:
        if not self._clients:
            timeout = self._settings.request_timeout
            self._clients = [make_client(self.url, self._settings, timeout) for _ in range(self._shards)]
            self._loads = [0] * self._shards

    @contextmanager
    def client(self) -> Iterator[openai.AsyncOpenAI]:
        """The least busy client of this URL, for one request."""
        self.open()
        index = min(range(self._shards), key=self._loads.__getitem__)
        self._loads[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._loads[index] -= 1

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        await asyncio.gather(*(client.close() for client in clients))


class ServerPool:
    """Chooses the least-loaded healthy server with room for each request; waits when none has room."""

    def __init__(self, servers: list[Server], *, down_s: float = 10.0) -> None:
        self.servers = servers
        self.down_s = down_s
        self._turn = itertools.count()  # breaks ties so equal loads rotate
        self._freed: asyncio.Event | None = None  # created in the event loop that uses it

    def healthy(self) -> list[Server]:
        now = time.monotonic()
        return [s for s in self.servers if s.down_until <= now]

    async def acquire(self) -> Server:
        """A server for one request, counted in flight until :meth:`release`."""
        while (server := self._pick()) is None:
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()
        server.in_flight += 1
        return server

    def release(self, server: Server) -> None:
        server.in_flight -= 1
        if self._freed is not None:
            self._freed.set()

    def _pick(self) -> Server | None:
        candidates = self.healthy()
        if not candidates:  # all refused recently: try the one that has rested longest
            candidates = [min(self.servers, key=lambda s: s.down_until)]
        roomy = [s for s in candidates if s.has_room]
        if not roomy:
            return None
        turn, n = next(self._turn), len(roomy)
        return min(enumerate(roomy), key=lambda p: (p[1].in_flight, (p[0] - turn) % n))[1]

    @property
    def capacity(self) -> int | None:
        """Requests all servers together run at once, when every one of them says."""
        caps = [s.capacity for s in self.servers]
        return None if any(c is None for c in caps) else sum(c for c in caps if c is not None)

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
