"""What differs between OpenAI-compatible servers: sampling names, image resizes, parallelism, error wording.

The request itself is the same everywhere (the image, then ``Please describe this image in detail.``); the
sampling fields reproduce the authors' vLLM sampling on each server:

- vLLM and SGLang take ``repetition_penalty`` as an extension; top-k and min-p are off by default.
- llama.cpp's server calls it ``repeat_penalty`` and samples with ``top_k=40, min_p=0.05`` unless told
  otherwise (``tools/server/README.md``, ``/completion`` options), so those are switched off explicitly.
- Ollama's ``/v1`` endpoint reads only the OpenAI fields (``docs/api/openai-compatibility.mdx``; the rest
  is dropped by ``openai/openai.go``): top-k and the penalty come from the Modelfile.
- ``generic`` servers get the standard fields only, so a strict server has nothing to reject.

Errors are recognised by their wording, not their status, because gateways and Ollama pass other servers'
bodies through (Ollama returns llama-server's message inside its own error).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from caprl_index.captioning.budget import Pass
from caprl_index.captioning.families import Family
from caprl_index.config import Settings

KINDS = ("vllm", "sglang", "llama.cpp", "ollama", "generic")
ErrorKind = Literal["context", "busy", "no_model", "no_vision", "other"]

REPETITION_PENALTY = 1.0

# Context overflow, as each server words it (lower case):
#   vLLM     "this model's maximum context length is", "the decoder prompt (length n) is longer than the
#            maximum model length of m", "exceeds the pre-allocated encoder cache size",
#            "... the model's context length is only n tokens" (vllm/v1/engine/input_processor.py,
#            vllm/renderers/params.py)
#   SGLang   "is longer than the model's context length", "exceeds the model's maximum context length",
#            "multimodal prompt is too long after expanding multimodal tokens" (tokenizer_manager.py)
#   llama    "exceeds the available context size" / type exceed_context_size_error (server-context.cpp)
#   Ollama   "the prompt is longer than the context length" (llm/llama_server.go), or llama-server's own
_CONTEXT = re.compile(
    r"context length|context size|maximum model length|context window|exceed_context_size|encoder cache size"
    r"|too long after expanding multimodal|larger than the max context",
    re.IGNORECASE,
)
# llama.cpp answers 503 "Loading model" while it starts; Ollama 503 "server busy" past OLLAMA_MAX_QUEUE.
_BUSY = re.compile(r"loading model|server busy|maximum pending requests|too many requests", re.IGNORECASE)
# vLLM "The model `x` does not exist." (404); Ollama "model 'x' not found"; llama.cpp router "model not found".
_NO_MODEL = re.compile(r"does not exist|model ['\"`]?[^'\"`]*['\"`]? not found|model not found", re.IGNORECASE)
# llama-server without --mmproj: 500 "image input is not supported"; Ollama: 400 "does not support vision".
_NO_VISION = re.compile(r"image input is not supported|does not support vision|not a multimodal model", re.I)

_NO_VISION_FIX = {
    "llama.cpp": "start llama-server with --mmproj <the model's mmproj GGUF> (or -hf <repo> to fetch both)",
    "ollama": "use a model with the vision capability (`ollama show <model>` lists it)",
}


def classify(status: int, message: str) -> ErrorKind:
    """What a failed request's status and message mean for the captioner."""
    if _NO_VISION.search(message):
        return "no_vision"
    if _CONTEXT.search(message):
        return "context"
    if status == 429 or _BUSY.search(message):
        return "busy"
    if status == 404 or _NO_MODEL.search(message):
        return "no_model"
    return "other"


def no_vision_fix(kind: str) -> str:
    return _NO_VISION_FIX.get(kind, "serve a vision model (CapRL-3B or CapRL 2.0) at this URL")


def sampling(kind: str, settings: Settings) -> dict[str, Any]:
    """The sampling fields of a caption request, named as ``kind`` reads them."""
    fields: dict[str, Any] = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_tokens,
    }
    if kind in ("vllm", "sglang"):
        fields["repetition_penalty"] = REPETITION_PENALTY
    elif kind == "llama.cpp":
        fields |= {"repeat_penalty": REPETITION_PENALTY, "top_k": 0, "min_p": 0.0}
    return fields


def passes(kind: str, family: Family) -> tuple[Pass, ...]:
    """How ``kind`` resizes an image of ``family`` before counting its tokens."""
    f = family.token_px
    hf = Pass(f, family.min_pixels, family.max_pixels)
    if kind == "sglang":
        # processors/qwen_vl.py resizes every Qwen-VL image to multiples of 28 px (IMAGE_FACTOR, even for
        # Qwen3-VL), within 4..16384 tokens' worth, before the Hugging Face processor resizes it again.
        return (Pass(28, 4 * 28 * 28, 16384 * 28 * 28), hf)
    if kind == "llama.cpp":
        # tools/mtmd/clip.cpp: set_limit_image_tokens(8, 4096) for the Qwen-VL projectors.
        return (Pass(f, 8 * f * f, 4096 * f * f),)
    if kind == "ollama":
        # llm/llama_server.go qwenVLServerArgs: Ollama starts llama-server with --image-min-tokens 1024.
        return (Pass(f, 1024 * f * f, 4096 * f * f),)
    return (hf,)


def default_parallel(kind: str) -> int | None:
    """Requests per URL that pay off when the server does not say: Ollama runs one at a time by default."""
    # envconfig.go: OLLAMA_NUM_PARALLEL defaults to 1; more requests wait in its queue (OLLAMA_MAX_QUEUE=512).
    return 1 if kind == "ollama" else None
