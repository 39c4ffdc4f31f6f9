"""How each server kind the fake imitates lists its model, words its errors and fits a request in its context.

Transcribed from each server's source and docs (see docs/caption-servers.md for the citations):

- ``vllm``: cards with ``owned_by "vllm"``, ``root`` and ``max_model_len``; errors ``{"error": {...}}``
  (``{"object": "error", ...}`` before 2025); an image that overflows the context is refused by the engine
  ("The decoder prompt (length N) is longer than the maximum model length of M"), a text prompt plus
  ``max_tokens`` by the frontend; generation that reaches the context stops with ``finish_reason "length"``.
- ``sglang``: ``owned_by "sglang"``, root = served name, ``GET /get_model_info``; errors
  ``{"object": "error", ...}``; prompt, or prompt + ``max_tokens``, at the context is refused; any model
  name is served.
- ``llama.cpp``: ``owned_by "llamacpp"``, ``GET /props``; errors ``{"error": {"code", "message", "type"}}``,
  ``exceed_context_size_error`` with ``n_prompt_tokens`` and ``n_ctx``; 500 without ``--mmproj``; 503
  "Loading model"; slots run at once, the rest wait; any model name is served.
- ``ollama``: ids with a tag (``caprl:latest``), ``owned_by`` the namespace, ``GET /api/version``,
  ``POST /api/show``; errors ``{"error": {"message", "type", "param", "code"}}``, llama-server's own body
  passed through as the message; 503 "server busy" past its queue.
- ``generic``: OpenAI's wording, and it refuses request fields it does not know.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from caprl_index.testing._fake_http import Reply

if TYPE_CHECKING:
    from caprl_index.testing.fake_vllm import FakeVLLM, RequestRecord

KINDS = ("vllm", "sglang", "llama.cpp", "ollama", "generic")
OLLAMA_ARCH = {"qwen2.5-vl": "qwen25vl", "qwen3-vl": "qwen3vl", "generic": "gemma3"}
OPENAI_FIELDS = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stream"}
NO_MMPROJ = "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"


def json_reply(status: int, body: Any) -> Reply:
    return Reply(status, json.dumps(body).encode())


def listed_id(app: FakeVLLM) -> str:
    """The id ``GET /v1/models`` shows for the served model."""
    return f"{app.model}:latest" if app.kind == "ollama" and ":" not in app.model else app.model


def models_body(app: FakeVLLM) -> dict[str, Any]:
    card: dict[str, Any] = {"id": listed_id(app), "object": "model", "created": int(time.time())}
    context = app.max_model_len if app.advertise_context else None
    if app.kind == "vllm":
        card |= {"owned_by": "vllm", "root": app.model_path, "parent": None, "max_model_len": context}
        card["permission"] = []
    elif app.kind == "sglang":
        card |= {"owned_by": "sglang", "root": app.model, "max_model_len": context}
    elif app.kind == "llama.cpp":
        card |= {"owned_by": "llamacpp", "meta": {"n_ctx_train": 262144, "n_params": 4_020_000_000}}
    elif app.kind == "ollama":
        card["owned_by"] = "library"
    else:
        card["owned_by"] = "organization-owner"
    return {"object": "list", "data": [card]}


def extra_get(app: FakeVLLM, path: str) -> Reply | None:
    """The kind's own GET endpoints (None: not one of them)."""
    if app.kind == "vllm" and path == "/version":
        return json_reply(200, {"version": "0.11.0"})
    if app.kind == "sglang" and path == "/get_model_info":
        return json_reply(200, {"model_path": app.model_path, "tokenizer_path": app.model_path, "is_generation": True})
    if app.kind == "llama.cpp" and path == "/props":
        return json_reply(200, _props(app))
    if app.kind == "ollama" and path == "/api/version":
        return json_reply(200, {"version": "0.12.6"})
    return None


def _props(app: FakeVLLM) -> dict[str, Any]:
    params = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0}
    slot = {"id": 0, "id_task": -1, "n_ctx": app.max_model_len if app.advertise_context else 0, "params": params}
    return {
        "default_generation_settings": slot,
        "total_slots": app.max_num_seqs,
        "model_path": app.model_path,
        "modalities": {"vision": app.vision, "audio": False},
        "build_info": "b6500-fake",
        "is_sleeping": False,
    }


def extra_post(app: FakeVLLM, path: str, raw: bytes) -> Reply | None:
    if app.kind != "ollama" or path != "/api/show":
        return None
    name = str(json.loads(raw or b"{}").get("model", ""))
    if name not in (app.model, listed_id(app)):
        return json_reply(404, {"error": f"model '{name}' not found"})
    arch, patch = OLLAMA_ARCH[app.family], 16 if app.family == "qwen3-vl" else 14
    info = {"general.architecture": arch, f"{arch}.vision.patch_size": patch, f"{arch}.vision.spatial_merge_size": 2}
    return json_reply(200, {
        "details": {"format": "gguf", "family": arch, "families": [arch], "quantization_level": "Q4_K_M"},
        "model_info": info,
        "parameters": _parameters(app),
        "capabilities": ["completion", "vision"] if app.vision else ["completion"],
    })  # fmt: skip


def _parameters(app: FakeVLLM) -> str:
    lines = app.modelfile.format(ctx=app.max_model_len).splitlines()
    return "\n".join(line for line in lines if app.advertise_context or not line.startswith("num_ctx"))


def error(app: FakeVLLM, status: int, message: str, kind: str = "BadRequestError", **extra: Any) -> Reply:
    """An error body exactly as the server kind writes it."""
    if app.kind == "vllm":
        inner = {"message": message, "type": kind, "param": None, "code": status}
        return json_reply(status, {"error": inner} if app.error_format == "new" else {"object": "error", **inner})
    if app.kind == "sglang":
        return json_reply(status, {"object": "error", "message": message, "type": kind, "param": None, "code": status})
    if app.kind == "llama.cpp":
        etype = extra.pop("etype", {400: "invalid_request_error", 503: "unavailable_error"}.get(status, "server_error"))
        return json_reply(status, {"error": {"code": status, "message": message, "type": etype, **extra}})
    etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    if app.kind == "generic":
        etype = extra.pop("etype", etype)
    return json_reply(status, {"error": {"message": message, "type": etype, "param": None, "code": extra.get("code")}})


def unknown_model(app: FakeVLLM, model: object) -> Reply | None:
    """The refusal of a request for another model, or None where the kind serves any name."""
    if app.kind in ("sglang", "llama.cpp") or model in (app.model, listed_id(app)):
        return None
    if app.kind == "ollama":
        return error(app, 404, f"model '{model}' not found")
    if app.kind == "generic":
        return error(app, 404, f"The model `{model}` does not exist or you do not have access to it.")
    return error(app, 404, f"The model `{model}` does not exist.", "NotFoundError")


def refused_fields(app: FakeVLLM, body: dict[str, Any]) -> Reply | None:
    unknown = sorted(set(body) - OPENAI_FIELDS)
    if app.kind != "generic" or not unknown:
        return None
    return error(app, 400, f"Unrecognized request argument supplied: {unknown[0]}")


def no_vision(app: FakeVLLM) -> Reply:
    if app.kind == "ollama":
        return error(app, 400, f'"{app.model}" does not support vision')
    return error(app, 500, NO_MMPROJ) if app.kind == "llama.cpp" else error(app, 400, "model is not multimodal")


def busy(app: FakeVLLM, failure: str) -> Reply:
    if app.kind == "llama.cpp" or failure == "loading":
        return error(app, 503, "Loading model", "ServiceUnavailableError", etype="unavailable_error")
    if app.kind == "ollama":
        return error(app, 503, "server busy, please try again.  maximum pending requests exceeded")
    return error(app, 503, "The server is overloaded.", "ServiceUnavailableError")


def context_limit(app: FakeVLLM, record: RequestRecord, text: int) -> tuple[Reply | None, int | None]:
    """(refusal, output cap) for a request of ``record.prompt_tokens`` (``text`` of them text) and max_tokens."""
    n, ctx, want = record.prompt_tokens, app.max_model_len, record.max_tokens or 0
    if app.kind == "vllm":
        return _vllm_limit(app, n, text, want)
    if app.kind == "sglang":
        if n >= ctx:
            return overflow(app, n), None
        return (error(app, 400, _sglang_total(n, want, ctx)) if n + want >= ctx else None), None
    if app.kind in ("llama.cpp", "ollama"):
        # Refused when the prompt fills the slot's context; otherwise generation stops when it is full.
        return (overflow(app, n), None) if n >= ctx else (None, ctx - n)
    return (overflow(app, n) if n + want > ctx else None), None


def overflow(app: FakeVLLM, n: int) -> Reply:
    """The refusal of a prompt of ``n`` tokens that the context cannot hold, in the kind's words."""
    ctx = app.max_model_len
    if app.kind == "vllm":
        return error(app, 400, vllm_overflow(app, n, ctx))
    if app.kind == "sglang":
        return error(app, 400, f"The input ({n} tokens) is longer than the model's context length ({ctx} tokens).")
    if app.kind in ("llama.cpp", "ollama"):
        return _llama_overflow(app, n, ctx)
    message = f"This model's maximum context length is {ctx} tokens. However, your messages resulted in {n} tokens."
    return error(app, 400, message, etype="invalid_request_error", code="context_length_exceeded")


def _vllm_limit(app: FakeVLLM, n: int, text: int, want: int) -> tuple[Reply | None, int | None]:
    ctx = app.max_model_len
    if text + want > ctx:  # the frontend counts the text prompt, before the image is expanded
        return error(app, 400, (
            f"'max_tokens' or 'max_completion_tokens' is too large: {want}. This model's maximum context length "
            f"is {ctx} tokens and your request has {text} input tokens ({want} > {ctx} - {text})."
        )), None  # fmt: skip
    return (overflow(app, n), None) if n > ctx else (None, ctx - n)


def vllm_overflow(app: FakeVLLM, n: int, ctx: int) -> str:
    style = app.context_error or ("decoder-prompt" if app.error_format == "new" else "max-context")
    if style == "decoder-prompt":
        return (
            f"The decoder prompt (length {n}) is longer than the maximum model length of {ctx}. Make sure that "
            "`max_model_len` is no smaller than the number of text tokens plus multimodal tokens. For image "
            "inputs, the number of image tokens depends on the number of images, and possibly their aspect "
            "ratios as well."
        )
    if style == "input-length":
        return f"Input length ({n}) exceeds model's maximum context length ({ctx})."
    return (
        f"This model's maximum context length is {ctx} tokens. However, you requested {n} tokens in the "
        "messages, Please reduce the length of the messages."
    )


def _sglang_total(n: int, want: int, ctx: int) -> str:
    return (
        f"Requested token count exceeds the model's maximum context length of {ctx} tokens. You requested a total "
        f"of {n + want} tokens: {n} tokens from the input messages and {want} tokens for the completion. Please "
        "reduce the number of tokens in the input messages or the completion to fit within the limit."
    )


def _llama_overflow(app: FakeVLLM, n: int, ctx: int) -> Reply:
    message = f"request ({n} tokens) exceeds the available context size ({ctx} tokens), try increasing it"
    llama = {"error": {"code": 400, "message": message, "type": "exceed_context_size_error", "n_prompt_tokens": n}}
    llama["error"]["n_ctx"] = ctx
    if app.kind == "ollama":  # llm/llama_server.go passes llama-server's whole body on as the message
        return error(app, 400, json.dumps(llama))
    return json_reply(400, llama)


def completion_extras(app: FakeVLLM) -> dict[str, Any]:
    if app.kind == "llama.cpp":
        return {"system_fingerprint": "b6500-fake", "timings": {"prompt_n": 0, "predicted_n": 0}}
    if app.kind == "ollama":
        return {"system_fingerprint": "fp_ollama"}
    return {}
