"""Test helpers that real tests and benchmarks share: a loopback server speaking the OpenAI protocol the way
vLLM, SGLang, llama.cpp, Ollama or a generic server does (``FakeVLLM(kind=..., family=...)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caprl_index.testing.fake_vllm import FakeVLLM, RequestRecord

__all__ = ["FakeVLLM", "RequestRecord"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m caprl_index.testing.fake_vllm` does not import the module twice.
    if name in __all__:
        from caprl_index.testing import fake_vllm

        return getattr(fake_vllm, name)
    raise AttributeError(name)
