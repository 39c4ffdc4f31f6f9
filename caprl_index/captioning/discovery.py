"""Probing a caption server: which kind it is, which model family it serves, its context and its slots.

Every server answers ``GET /v1/models``; what else it says differs, and each kind is asked where it tells:

- vLLM: model cards with ``owned_by: "vllm"``, ``root`` (the model path) and ``max_model_len``
  (``vllm/entrypoints/openai/serving_models.py``).
- SGLang: ``owned_by: "sglang"`` and ``max_model_len``; ``root`` is the served name, so the model path
  comes from ``GET /get_model_info`` (``sglang/srt/entrypoints/openai/protocol.py``, native API docs).
- llama.cpp: ``owned_by: "llamacpp"``, the id is the GGUF path unless ``--alias``; ``GET /props`` gives
  ``total_slots``, the per-slot ``default_generation_settings.n_ctx``, ``model_path`` and ``modalities``
  (``tools/server/README.md``).
- Ollama: ``owned_by`` is the model's namespace (``"library"``), so the kind is told by
  ``GET /api/version``; ``POST /api/show`` gives the architecture, capabilities and Modelfile parameters
  (``api/types.go`` ShowResponse, ``server/routes.go``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from caprl_index.captioning.dialects import no_vision_fix
from caprl_index.captioning.families import detect_family
from caprl_index.captioning.servers import PROBE_TIMEOUT_S, describe_error, make_client
from caprl_index.config import Settings

_OWNERS = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}


@dataclass(frozen=True)
class ServerProbe:
    """What one URL said about itself."""

    url: str
    ok: bool  # reachable and serves the configured model
    models: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    error: str | None = None
    kind: str = "generic"
    kind_source: str = ""  # how the kind was learnt ("owned_by vllm", "GET /api/version", "CAPRL_SERVER_KIND")
    family: str | None = None  # the model family the server's answers name, when they name one
    family_source: str = ""
    context: int | None = None  # tokens one request may hold (per slot for llama.cpp)
    slots: int | None = None  # requests the server runs at once, when it says
    vision: bool | None = None  # False: the server says it cannot read images
    notes: tuple[str, ...] = ()  # things worth a warning (e.g. Ollama's top_k)


@dataclass
class _Facts:
    """What the kind-specific endpoints added."""

    names: list[str] = field(default_factory=list)
    context: int | None = None
    slots: int | None = None
    vision: bool | None = None
    notes: list[str] = field(default_factory=list)


def server_root(url: str) -> str:
    """The server's address without the ``/v1`` of the OpenAI routes (where /props and /api/* live)."""
    return re.sub(r"/v1/?$", "", url.rstrip("/"))


async def probe_servers(settings: Settings) -> list[ServerProbe]:
    """Ask every configured URL what it serves (concurrently)."""
    return list(await asyncio.gather(*(probe(url, settings) for url in settings.vllm_url)))


async def probe(url: str, settings: Settings) -> ServerProbe:
    start = time.perf_counter()
    refused = await unreachable(url)
    if refused is not None:
        return ServerProbe(url, False, latency_s=time.perf_counter() - start, error=refused)
    import openai

    try:
        async with make_client(url, settings, PROBE_TIMEOUT_S) as client:
            cards = await _models(client)
            kind, kind_source = await _kind(client, url, cards, settings)
            served = _served(cards, settings.vllm_model, kind)
            facts = await _facts(client, url, kind, served, settings)
    except openai.AuthenticationError:
        reason = "401 Unauthorized: set CAPRL_VLLM_API_KEY to the key the server was started with (--api-key)"
        return ServerProbe(url, False, latency_s=time.perf_counter() - start, error=reason)
    except (openai.OpenAIError, ValueError, KeyError, TypeError) as exc:
        return ServerProbe(url, False, latency_s=time.perf_counter() - start, error=describe_error(exc))
    return _result(url, settings, cards, served, kind, kind_source, facts, time.perf_counter() - start)


async def unreachable(url: str) -> str | None:
    """Why nothing can answer at `url` (connection refused, unknown host, no answer in the probe's time),
    learnt from one bare TCP connection; None when something accepts it (the SDK's probe then asks what it
    serves), or when a proxy would carry the requests.

    A laptop without a caption server is the common case: this answers it without importing the OpenAI SDK
    and building its TLS context (~0.5 s of a 5 s cold ingest)."""
    import socket
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is no number: the SDK says so
        return None
    if not host or port is None or (urllib.request.getproxies_environment() and not _bypassed(host)):
        return None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        return f"Connection error: {host}:{port} did not accept a connection within {PROBE_TIMEOUT_S:g} s"
    except socket.gaierror as exc:
        return f"Connection error: cannot resolve host {host!r} ({exc.strerror or exc})"
    except OSError as exc:
        refused = isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc)
        why = "connection refused: is the server running, on this port?" if refused else (exc.strerror or str(exc))
        return f"Connection error: nothing accepts connections at {host}:{port} ({why})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _bypassed(host: str) -> bool:
    import urllib.request

    return bool(urllib.request.proxy_bypass(host))  # NO_PROXY (and, off Linux, the system settings)


def _result(
    url: str,
    settings: Settings,
    cards: list[dict[str, Any]],
    served: dict[str, Any] | None,
    kind: str,
    kind_source: str,
    facts: _Facts,
    latency: float,
) -> ServerProbe:
    models = [str(c.get("id")) for c in cards]
    names = [str(served.get(k) or "") for k in ("id", "root")] + facts.names if served else []
    detected = detect_family(*names)
    family, source = (detected.name, f"named by {_first_match(names)}") if detected else (None, "")
    if settings.model_family != "auto":
        family, source = settings.model_family, "CAPRL_MODEL_FAMILY"
    context = facts.context if facts.context is not None else _int((served or {}).get("max_model_len"))
    error = None if served else _not_served(settings, kind, models)
    if served is not None and facts.vision is False:
        served, error = None, f"the server says it cannot read images: {no_vision_fix(kind)}"
    return ServerProbe(
        url, served is not None, models, latency, error, kind, kind_source, family, source,
        context, facts.slots, facts.vision, tuple(facts.notes),
    )  # fmt: skip


def _first_match(names: list[str]) -> str:
    return next((n for n in names if detect_family(n)), "")


def _not_served(settings: Settings, kind: str, models: list[str]) -> str:
    name = settings.vllm_model
    fix = {
        "llama.cpp": f"start llama-server with --alias {name}",
        "ollama": f"create it: `ollama create {name} -f Modelfile` (docs/caption-servers.md)",
    }.get(kind, f"start the server with --served-model-name {name}")
    return f"serves {models or 'no models'}, not {name!r}: set CAPRL_VLLM_MODEL to the served name, or {fix}"


async def _models(client: Any) -> list[dict[str, Any]]:
    import httpx2

    response = await client.get("/models", cast_to=httpx2.Response)
    body = response.json()
    cards = body.get("data") if isinstance(body, dict) else None
    if not isinstance(cards, list):
        raise ValueError(f"GET /models answered {str(body)[:200]!r}, not an OpenAI model list")
    return [c for c in cards if isinstance(c, dict)]


async def _kind(client: Any, url: str, cards: list[dict[str, Any]], settings: Settings) -> tuple[str, str]:
    if settings.server_kind != "auto":
        return settings.server_kind, "CAPRL_SERVER_KIND"
    for card in cards:
        if (kind := _OWNERS.get(str(card.get("owned_by")))) is not None:
            return kind, f"owned_by {card.get('owned_by')!r} in /v1/models"
    version = await _get(client, server_root(url) + "/api/version")
    if isinstance(version, dict) and "version" in version:
        return "ollama", f"GET /api/version answered {version['version']}"
    return "generic", "no server-specific field in /v1/models"


def _served(cards: list[dict[str, Any]], name: str, kind: str) -> dict[str, Any] | None:
    """The card of the configured model (Ollama resolves a bare name to ``:latest``)."""
    for card in cards:
        if card.get("id") in (name, f"{name}:latest"):
            return card
    if kind == "llama.cpp" and len(cards) == 1:
        return cards[0]  # one model per llama-server (outside router mode): it ignores the requested name
    return None


async def _facts(client: Any, url: str, kind: str, served: dict[str, Any] | None, settings: Settings) -> _Facts:
    if kind == "llama.cpp":
        return _llama_facts(await _get(client, server_root(url) + "/props"))
    if kind == "sglang":
        info = await _get(client, server_root(url) + "/get_model_info")
        return _Facts(names=[str(info.get("model_path") or "")] if isinstance(info, dict) else [])
    if kind == "ollama" and served is not None:
        body = {"model": str(served.get("id"))}
        return _ollama_facts(await _post(client, server_root(url) + "/api/show", body), settings)
    return _Facts()


def _llama_facts(props: Any) -> _Facts:
    if not isinstance(props, dict):
        return _Facts()
    settings_ = props.get("default_generation_settings") or {}
    vision = (props.get("modalities") or {}).get("vision")
    return _Facts(
        names=[str(props.get("model_path") or ""), str(props.get("model_alias") or "")],
        context=_int(settings_.get("n_ctx")),
        slots=_int(props.get("total_slots")),
        vision=vision if isinstance(vision, bool) else None,
    )


def _ollama_facts(show: Any, settings: Settings) -> _Facts:
    if not isinstance(show, dict):
        return _Facts()
    details, info = show.get("details") or {}, show.get("model_info") or {}
    params = _modelfile_parameters(str(show.get("parameters") or ""))
    notes = []
    if params.get("top_k") != "0":
        notes.append(
            "Ollama samples with top_k=40 unless the Modelfile sets `PARAMETER top_k 0` (its /v1 endpoint "
            "cannot send top_k); CapRL's authors sample without top-k"
        )
    capabilities = show.get("capabilities")
    return _Facts(
        names=[str(info.get("general.architecture") or ""), str(details.get("family") or "")],
        context=_int(int(params["num_ctx"])) if params.get("num_ctx", "").isdigit() else None,
        vision=("vision" in capabilities) if isinstance(capabilities, list) else None,
        notes=notes,
    )


def _modelfile_parameters(text: str) -> dict[str, str]:
    """``num_ctx 8192\\ntop_k 0`` (the ``parameters`` of ``/api/show``) as a dict."""
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
    return {p[0]: p[1].strip().strip('"') for p in pairs if len(p) == 2}


async def _get(client: Any, url: str) -> Any:
    return await _json(client.get(url, cast_to=_response_type()))


async def _post(client: Any, url: str, body: dict[str, Any]) -> Any:
    return await _json(client.post(url, body=body, cast_to=_response_type()))


def _response_type() -> Any:
    import httpx2

    return httpx2.Response


async def _json(call: Any) -> Any:
    """The JSON of an optional endpoint, or None when the server has no such endpoint."""
    import openai

    try:
        response = await call
        return response.json()
    except (openai.APIStatusError, openai.APIConnectionError, ValueError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
