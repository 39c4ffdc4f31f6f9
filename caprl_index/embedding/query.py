"""The packaged all-MiniLM-L6-v2 in NumPy: queries (`search`, `eval`, serve) and documents with `embed_backend` numpy.

Importing sentence-transformers (torch, transformers, scikit-learn) costs about ten seconds on a 2-core
machine, longer than the whole rest of a search, and 400 MB of memory. The same BERT forward pass
(6 layers, 384 wide) is computed here with NumPy from the model's own safetensors weights and its
`tokenizers` tokenizer: same tokens, same arithmetic, vectors equal to sentence-transformers' within
float32 rounding (`tests/test_embedding.py` and `tests/test_embedding_documents.py` hold them to a cosine
of 0.9999 against the real model). On document batches it runs at 0.74-0.81x sentence-transformers'
documents/s on 2 cores, in 320 MB instead of 710 (`benchmarks/bench_embed.py`); ONNX Runtime
(`onnx_bert.py`, 1.28-2.19x) embeds documents by default. For a query it starts in milliseconds (the model file
is mapped, not read) where the ONNX Runtime encoder first joins and transposes 40 MB of weights (~0.1 s) and
imports onnxruntime.

Only a model folder shaped exactly like the packaged one is accepted (BERT, mean pooling, normalised);
anything else returns None from `open_query_encoder` and the caller falls back to sentence-transformers
(`embed_backend` in the settings chooses).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caprl_index.embedding.kernels import (
    ONE_BLAS_THREAD,
    ONE_THREAD_TOKENS,
    dense_residual_norm,
    gelu_,
    inline,
    layer_norm_,
    rows,
    spread,
    text_groups,
)

_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


FORWARD_TOKENS = 2048  # tokens per forward pass (see NumpyBertEncoder._batches)
_DTYPES = {"F32": np.float32, "I64": np.int64}  # safetensors' names (little-endian)


def _map_tensors(path: Path) -> dict[str, np.ndarray] | None:
    """The tensors of a float32 safetensors file mapped read-only into memory, not read: a search touches
    a few rows of the 47 MB word embeddings, and reading the whole 90 MB file was a fifth of its start.
    None when a tensor is of another type (the caller reads the file instead)."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    if not header or any(t.get("dtype") not in _DTYPES for t in header.values()) or sys.byteorder != "little":
        return None
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out = {}
    for name, tensor in header.items():
        start, stop = tensor["data_offsets"]
        out[name] = data[start:stop].view(_DTYPES[tensor["dtype"]]).reshape(tensor["shape"])
    return out


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """The model's tensors as float32, memory-mapped when the file allows it."""
    path = folder / "model.safetensors"
    weights = _map_tensors(path)
    if weights is None:
        from safetensors.numpy import load_file

        weights = load_file(path)
    return {k: v.astype(np.float32, copy=False) for k, v in weights.items()}


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

    backend = "NumPy"

    def __init__(self, folder: Path, name: str, *, batch_size: int = 64, forward_tokens: int = FORWARD_TOKENS) -> None:
        self.folder = folder
        self.name = name
        self.batch_size = batch_size
        self.forward_tokens = forward_tokens
        self._lock = threading.Lock()
        self._weights: dict[str, np.ndarray] | None = None
        self._layout: dict[int, tuple[np.ndarray, ...]] = {}
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
                self._tokenizer = self._embedding_tokenizer()
                self._weights = read_weights(self.folder)
        return self._weights, self._tokenizer

    def load(self) -> None:
        """Load the model now (the pipeline calls it while the first pages parse); else on first use."""
        self._load()

    def _embedding_tokenizer(self) -> Any:
        """The tokenizer `embed()` uses: truncating at the model's window, no padding."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.enable_truncation(max_length=self._max_tokens)
        tok.no_padding()
        return tok

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
        vectors = [v.tolist() for batch in self._batches(encodings) for v in self._forward(w, batch)]
        if sum(len(e.ids) for e in encodings) >= ONE_THREAD_TOKENS:  # a document batch, not a query
            from caprl_index.memory import trim_heap

            trim_heap()  # a pass's activations are freed into malloc's arenas, which keep them otherwise
        return vectors

    def _batches(self, encodings: list[Any]) -> Iterator[list[Any]]:
        """Consecutive texts, at most `batch_size` of them and FORWARD_TOKENS tokens (one text alone may have
        more): a layer's widest activation is tokens x 1536 floats and a forward pass holds several layers'
        worth, ~30 KB a token; 64 full texts (16,000 tokens) raised the process's peak by 500 MB."""
        batch: list[Any] = []
        tokens = 0
        for encoding in encodings:
            n = len(encoding.ids)
            if batch and (len(batch) >= self.batch_size or tokens + n > self.forward_tokens):
                yield batch
                batch, tokens = [], 0
            batch.append(encoding)
            tokens += n
        if batch:
            yield batch

    def _layer(self, w: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, ...]:
        """Layer `i`'s matrices for the forward pass, made once: query, key and value joined into one
        product, every matrix transposed to (in, out) and contiguous (40 MB for the model, ~15 ms)."""
        with self._lock:
            cached = self._layout.get(i)
            if cached is None:
                p = f"encoder.layer.{i}."
                names = [f"attention.self.{m}" for m in ("query", "key", "value")]
                cached = (
                    np.ascontiguousarray(np.concatenate([w[p + n + ".weight"] for n in names]).T),
                    np.concatenate([w[p + n + ".bias"] for n in names]),
                    *(
                        m
                        for name in ("attention.output.dense", "intermediate.dense", "output.dense")
                        for m in (np.ascontiguousarray(w[p + name + ".weight"].T), w[p + name + ".bias"])
                    ),
                    *(w[p + name] for name in ("attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias")),
                    *(w[p + name] for name in ("output.LayerNorm.weight", "output.LayerNorm.bias")),
                )
                self._layout[i] = cached
        return cached

    def _forward(self, w: dict[str, np.ndarray], encodings: list[Any]) -> list[np.ndarray]:
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])
        types = np.concatenate([np.asarray(e.type_ids, dtype=np.int64) for e in encodings])
        bounds = np.cumsum([0, *(len(e.ids) for e in encodings)])
        positions = np.concatenate([np.arange(len(e.ids)) for e in encodings])
        x = w["embeddings.word_embeddings.weight"][ids]
        x += w["embeddings.position_embeddings.weight"][positions]
        x += w["embeddings.token_type_embeddings.weight"][types]
        # A document batch: the element-wise steps and attention (one BLAS thread) run on all cores, in
        # slices; the matrix products use BLAS's own threads. A query batch runs on the calling thread.
        run = spread if len(x) >= ONE_THREAD_TOKENS else inline
        eps = self._eps
        run(rows(x), layer_norm_, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        dim = self._dim
        scale = np.float32(1 / math.sqrt(dim // self._heads))
        for i in range(self._layers):
            qkv_w, qkv_b, out_w, out_b, up_w, up_b, down_w, down_b, ln1_w, ln1_b, ln2_w, ln2_b = self._layer(w, i)
            qkv = x @ qkv_w
            qkv += qkv_b
            qkv[:, :dim] *= scale  # the query, by 1/sqrt(head size)
            attn = np.empty_like(x)

            def attend(texts: slice, qkv: np.ndarray = qkv, attn: np.ndarray = attn) -> None:
                for a, b in itertools.pairwise(bounds[texts.start : texts.stop + 1]):  # a text attends to itself only
                    attn[a:b] = self._attention(qkv[a:b, :dim], qkv[a:b, dim : 2 * dim], qkv[a:b, 2 * dim :])

            with ONE_BLAS_THREAD if run is spread else contextlib.nullcontext():
                run(text_groups(bounds), attend)
            x = dense_residual_norm(run, attn, out_w, out_b, x, (ln1_w, ln1_b), eps)
            h = x @ up_w
            h += up_b
            run(rows(h), gelu_)
            x = dense_residual_norm(run, h, down_w, down_b, x, (ln2_w, ln2_b), eps)
        pooled = [x[a:b].mean(0) for a, b in itertools.pairwise(bounds)]
        return [v / max(float(np.linalg.norm(v)), 1e-12) for v in pooled]

    def _attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Softmax(q k^T) v per head; q arrives scaled by 1/sqrt(head size)."""
        n, heads = len(q), self._heads
        size = self._dim // heads
        scores = q.reshape(n, heads, size).transpose(1, 0, 2) @ k.reshape(n, heads, size).transpose(1, 2, 0)
        scores -= scores.max(-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(-1, keepdims=True)
        attn = scores @ v.reshape(n, heads, size).transpose(1, 0, 2)
        return attn.transpose(1, 0, 2).reshape(n, self._dim)


def model_folder(settings: Any) -> Path | None:
    """The configured local model's folder when it is shaped like the packaged one (`supported`); else None."""
    if settings.embed_url:
        return None
    from caprl_index.embedding.sentence import resolve_model
    from caprl_index.errors import ConfigError

    try:
        folder = Path(resolve_model(settings.embed_model))
    except ConfigError:  # the full embedder reports it properly
        return None
    return folder if folder.is_dir() and supported(folder) else None


def open_query_encoder(settings: Any) -> NumpyBertEncoder | None:
    """The NumPy encoder when the configured embedder is a local folder it can run; else None."""
    folder = model_folder(settings)
    if folder is None:
        return None
    return NumpyBertEncoder(folder, settings.embed_model, batch_size=settings.embed_batch_size)
