"""The packaged all-MiniLM-L6-v2 in NumPy: queries (`search`, `eval`, serve) and documents with `embed_backend` auto.

Importing sentence-transformers (torch, transformers, scikit-learn) costs about ten seconds on a 2-core
machine, longer than the whole rest of a search, and 400 MB of memory. The same BERT forward pass
(6 layers, 384 wide) is computed here with NumPy from the model's own safetensors weights and its
`tokenizers` tokenizer: same tokens, same arithmetic, vectors equal to sentence-transformers' within
float32 rounding (`tests/test_embedding.py` and `tests/test_embedding_documents.py` hold them to a cosine
of 0.9999 against the real model). On document batches it ran at 0.84-1.1x torch's rate on 2 cores
(`benchmarks/bench_embed.py`), so documents stay on sentence-transformers unless configured.

Only a model folder shaped exactly like the packaged one is accepted (BERT, mean pooling, normalised);
anything else returns None from `open_query_encoder` and the caller falls back to sentence-transformers
(`embed_backend` in the settings chooses).
"""

from __future__ import annotations

import contextlib
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


_GELU_BLOCK = 32_768  # floats per step: the temporaries stay in L2 (whole-array passes were 4x slower)
# Abramowitz & Stegun 7.1.26: erf(a) = 1 - poly(t) * exp(-a^2), t = 1 / (1 + p a), |error| <= 1.5e-7,
# under float32 rounding of the activations (scipy's erf is scalar code: a third of a batch's time).
_ERF_P = np.float32(0.3275911)
_ERF_POLY = [np.float32(c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]


def _gelu_(h: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU of `h` in place, block by block, float32."""
    flat = h.reshape(-1)
    a, t, y = (np.empty(_GELU_BLOCK, np.float32) for _ in range(3))
    for i in range(0, flat.size, _GELU_BLOCK):
        x = flat[i : i + _GELU_BLOCK]
        n = x.size
        _erf_abs(x, a[:n], t[:n], y[:n])
        np.copysign(y[:n], x, out=y[:n])
        y[:n] += 1
        y[:n] *= 0.5
        x *= y[:n]
    return h


def _erf_abs(x: np.ndarray, a: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
    """y = erf(|x| / sqrt 2), with `a` and `t` as scratch."""
    np.multiply(x, np.float32(1 / math.sqrt(2.0)), out=a)
    np.abs(a, out=a)
    np.multiply(a, _ERF_P, out=t)
    t += 1
    np.reciprocal(t, out=t)
    np.multiply(t, _ERF_POLY[0], out=y)
    for c in _ERF_POLY[1:]:
        y += c
        y *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    y *= a
    np.subtract(1, y, out=y)


class _OneBlasThread:
    """One BLAS thread while any thread of the process is inside (counted, so overlapping users of the
    encoder do not restore each other's limit too early).

    Attention is a dozen small products per text; OpenBLAS wakes its second thread for each, and on a
    busy 2-core machine that wait made attention 8-25x slower than one thread (bench_embed.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limit: Any = None
        self._controller: Any = None

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                if self._controller is None:  # finding the BLAS libraries takes 2 ms: once, not per layer
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limit = self._controller.limit(limits=1, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._limit.restore_original_limits()


_ONE_BLAS_THREAD = _OneBlasThread()
_ONE_THREAD_TOKENS = 512  # a query batch: its products are small, and serve limits BLAS to one thread anyway


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

    def __init__(self, folder: Path, name: str, *, batch_size: int = 64) -> None:
        self.folder = folder
        self.name = name
        self.batch_size = batch_size
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
                # Already float32 in the packaged file: no copy (a copy was 90 MB and a third of a search's start).
                self._weights = {k: v.astype(np.float32, copy=False) for k, v in weights.items()}
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
        # In batches: a layer's activations are tokens x 1536 floats (64 full texts: 100 MB).
        step = self.batch_size
        return [v.tolist() for i in range(0, len(encodings), step) for v in self._forward(w, encodings[i : i + step])]

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
            with _ONE_BLAS_THREAD if len(x) >= _ONE_THREAD_TOKENS else contextlib.nullcontext():
                for a, b in itertools.pairwise(bounds):  # each text attends to itself only
                    attn[a:b] = self._attention(q[a:b], k[a:b], v[a:b])
            x = _layer_norm(
                dense(attn, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self._eps,
            )
            h = dense(x, "intermediate.dense")
            h = _gelu_(h)
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
    return NumpyBertEncoder(folder, settings.embed_model, batch_size=settings.embed_batch_size)
