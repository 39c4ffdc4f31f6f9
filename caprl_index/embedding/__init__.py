"""Embedding backends: sentence-transformers (default, offline) or an OpenAI-compatible /v1/embeddings URL."""

from __future__ import annotations

from caprl_index.embedding.base import Embedder, open_embedder

__all__ = ["Embedder", "open_embedder"]
