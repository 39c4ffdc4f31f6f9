"""Reaching a Qdrant server: the checked connection, which failures are worth a retry, and the retry loop.

Retried: transport failures (connection refused or reset, timeouts), the server's 5xx, gRPC UNAVAILABLE /
DEADLINE_EXCEEDED, and 429 (`ResourceExhaustedResponse`, after the server's Retry-After): each may pass on
the next try. Not retried: any other 4xx and every value or validation error, which fail the same way again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from qdrant_client import QdrantClient
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from caprl_index.errors import StoreError

T = TypeVar("T")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before each retry; 5 attempts in all
MAX_WAIT_S = 30.0  # a Retry-After longer than this is cut short


def connect(url: str, api_key: str | None = None, *, timeout: int = 120) -> QdrantClient:
    """A client for the server at `url`, checked by one request; StoreError naming the fix when unreachable."""
    client = QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)
    try:
        client.get_collections()
    except Exception as exc:
        client.close()
        raise StoreError(
            f"cannot reach Qdrant at {url}: {exc}. Start it (docker compose up qdrant), check "
            "CAPRL_QDRANT_URL / CAPRL_QDRANT_API_KEY, or unset the URL for the embedded store."
        ) from exc
    return client


def is_transient(exc: BaseException) -> bool:
    """True for failures that may pass on a retry: the transport, the server's 5xx, and 429."""
    import httpx

    if isinstance(exc, ResourceExhaustedResponse | httpx.TransportError):
        return True
    if isinstance(exc, ResponseHandlingException):  # wraps transport errors and response parsing errors alike
        return isinstance(exc.source, httpx.TransportError)
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code >= 500
    code = getattr(exc, "code", None)  # grpc.RpcError, without importing grpc
    return callable(code) and getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def retry(op: Callable[[], T], delays: Sequence[float], where: str) -> T:
    """Run `op`, retrying transient failures after each of `delays`; StoreError naming `where` when it fails."""
    for delay in (*delays, None):
        try:
            return op()
        except Exception as exc:
            if delay is None or not is_transient(exc):
                raise StoreError(f"Qdrant ({where}) failed: {exc}") from exc
            wait = exc.retry_after_s if isinstance(exc, ResourceExhaustedResponse) else delay
            time.sleep(min(float(wait), MAX_WAIT_S))
    raise AssertionError("unreachable")
