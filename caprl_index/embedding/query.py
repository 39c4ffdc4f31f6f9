"""Fast query encoder: the packaged all-MiniLM-L6-v2 in NumPy, for `search` and `eval`.

Importing sentence-transformers (torch, transformers, scikit-learn) costs about ten seconds on a 2-core
machine, longer than the whole rest of a search. A query is one short text, so the same BERT forward pass
(6 layers, 384 wide) is computed here with NumPy from the model's own safetensors weights and its
`tokenizers` tokenizer: same tokens, same arithmetic, vectors equal to sentence-transformers' within
float32 rounding (`tests/test_embedding.py` holds them to a cosine of 0.9999 against the real model).

Only a model folder shaped exactly like the packaged one is accepted (BERT, mean pooling, normalised);
anything else returns None from `open_query_encoder` and the caller falls back to the full embedder.
Documents are always embedded by sentence-transformers.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf

        return np.asarray(erf(x), dtype=x.dtype)
    except ImportError:  # pragma: no cover - scipy comes with sentence-transformers
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def supported(folder: Path) -> bool:
    """True when `folder` is a sentence-transformers BERT model with mean pooling and normalisation."""
    try:
        modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        config = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        pooling.get(k)
        for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    )
    return (
        modules == _MODULES
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and bool(mean_only)
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


class NumpyBertEncoder:
    """Embeds texts with a sentence-transformers BERT folder using NumPy only (loaded on first use)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self._lock = threading.Lock()
        self._weights: dict[str, np.ndarray] | None = None
        self._tokenizer: Any = None
        config = json.loads((folder / "config.json").read_text())
        st_config = json.loads((folder / "sentence_bert_config.json").read_text())
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self._dim = int(config["hidden_size"])
        self._max_tokens = int(st_config.get("max_seq_length") or config["max_position_embeddings"])

    def _load(self) -> tuple[dict[str, np.ndarray], Any]:
        with self._lock:
            if self._weights is None:
                from safetensors.numpy import load_file
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                tok.enable_truncation(max_length=self._max_tokens)
                tok.no_padding()
                self._tokenizer = tok
                weights = load_file(self.folder / "model.safetensors")
                self._weights = {k: v.astype(np.float32) for k, v in weights.items()}
        return self._weights, self._tokenizer

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def tokenizer(self) -> Callable[[str], Sequence[object]]:
        """A tokenizer of the caller's own (not the one `embed()` uses: its state is per object)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return lambda text: tok.encode(text, add_special_tokens=False).tokens

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of `texts`, computed together: every layer but attention works token by token, so
        the tokens of all texts go through each matrix product at once (no padding, nothing to mask), and
        attention runs per text. Several queries cost half as much CPU each as one by one (8 at once);
        one text is computed exactly as before."""
        if not texts:
            return []
        w, tok = self._load()
        encodings = [tok.encode(text) for text in texts]
        return [v.tolist() for v in self._forward(w, encodings)]

    def _forward(self, w: dict[str, np.ndarray], encodings: list[Any]) -> list[np.ndarray]:
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])
        types = np.concatenate([np.asarray(e.type_ids, dtype=np.int64) for e in encodings])
        bounds = np.cumsum([0, *(len(e.ids) for e in encodings)])
        positions = np.concatenate([np.arange(len(e.ids)) for e in encodings])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps)
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q, k, v = (dense(x, f"attention.self.{m}") for m in ("query", "key", "value"))
            attn = np.empty_like(x)
            for a, b in itertools.pairwise(bounds):  # each text attends to itself only
                attn[a:b] = self._attention(q[a:b], k[a:b], v[a:b])
            x = _layer_norm(
                dense(attn, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self._eps,
            )
            h = dense(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / np.float32(math.sqrt(2.0))))
            x = _layer_norm(
                dense(h, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self._eps,
            )
        pooled = [x[a:b].mean(0) for a, b in itertools.pairwise(bounds)]
        return [v / max(float(np.linalg.norm(v)), 1e-12) for v in pooled]

    def _attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        n, heads = len(q), self._heads
        size = self._dim // heads
        q, k, v = (m.reshape(n, heads, size).transpose(1, 0, 2) for m in (q, k, v))
        scores = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(size))
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        return attn.transpose(1, 0, 2).reshape(n, self._dim)


def open_query_encoder(settings: Any) -> NumpyBertEncoder | None:
    """The NumPy encoder when the configured embedder is a local folder it can run; else None."""
    if settings.embed_url:
        return None
    from caprl_index.embedding.sentence import resolve_model
    from caprl_index.errors import ConfigError

    try:
        folder = Path(resolve_model(settings.embed_model))
    except ConfigError:  # the full embedder reports it properly
        return None
    if not folder.is_dir() or not supported(folder):
        return None
    return NumpyBertEncoder(folder, settings.embed_model)
