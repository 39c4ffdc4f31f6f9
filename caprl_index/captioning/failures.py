"""Why a caption request failed, decided once per exception, from the SDK's error and the server's words.

    Failure                  the figure keeps its OCR text (never raised to the caller)
    ├── Retry                timeout, connection error, 5xx, busy (429, "Loading model"), malformed or
    │                        empty answer: backoff, retry (failover: another URL may answer at once)
    └── ContextTooLong       the image did not fit the context, whatever the status: re-sent once, smaller

A plain 4xx is never retried: the same request gets the same answer. Neither is a server that cannot read
images (llama-server without ``--mmproj`` answers 500): retrying it only delays the OCR fallback.
"""

from __future__ import annotations

from caprl_index.captioning import dialects
from caprl_index.captioning.servers import Server, describe_error


class Failure(Exception):
    """Captioning this image failed; the message is the reason recorded on the caption."""


class Retry(Failure):
    def __init__(self, reason: str, *, failover: bool = False) -> None:
        super().__init__(reason)
        self.failover = failover  # another server may answer at once: no need to wait


class ContextTooLong(Failure):
    pass


def classify(exc: Exception, server: Server, timeout_s: float, model: str) -> Exception:
    """The :class:`Failure` that ``exc`` (raised by a request to ``server``) stands for."""
    import openai

    where = server.url
    if isinstance(exc, openai.APITimeoutError):
        return Retry(f"{where}: no answer within {timeout_s:g}s (request_timeout)")
    if isinstance(exc, openai.APIConnectionError):
        return Retry(f"{where}: {describe_error(exc)}", failover=True)
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc.status_code, error_message(exc.body) or str(exc), server, model)
    if isinstance(exc, ValueError | openai.APIResponseValidationError):
        return Retry(f"{where}: malformed response: {exc}")
    return exc  # a bug, not a server failure: let it surface


def _status_failure(status: int, message: str, server: Server, model: str) -> Failure:
    where, kind = server.url, dialects.classify(status, message)
    if kind == "context":
        return ContextTooLong(f"{where}: {message}")
    if kind == "no_vision":
        return Failure(f"{where}: HTTP {status}: {message}: {dialects.no_vision_fix(server.kind)}")
    if kind == "busy" or status >= 500:
        return Retry(f"{where}: HTTP {status}: {message}")
    if kind == "no_model":
        return Failure(
            f"{where}: HTTP {status}: {message}: set CAPRL_VLLM_MODEL to a name GET /v1/models lists (now {model!r})"
        )
    return Failure(f"{where}: HTTP {status}: {message}")


def error_message(body: object) -> str:
    """The message of an error body: ``{"error": {"message": ...}}`` (vLLM since 2025, llama.cpp, Ollama),
    ``{"object": "error", "message": ...}`` (vLLM before, SGLang) or ``{"error": "..."}``."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", ""))
        return str(inner)
    return str(body or "")
