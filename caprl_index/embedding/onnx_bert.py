"""The packaged all-MiniLM-L6-v2 on ONNX Runtime: how documents are embedded by default (`embed_backend` auto).

ONNX Runtime is already here for OCR (rapidocr-onnxruntime). The BERT graph is written from the model's
own safetensors weights when the encoder first runs (`bert_model`; no export, no torch, no `onnx`
package): the same forward pass as sentence-transformers, with ONNX Runtime's fused multi-head attention
(`com.microsoft.Attention`) and its graph optimisations. On 640 real chunks on 2 cores it embeds 2.19x
sentence-transformers' documents/s (76.4 vs 35.0; 1.28x on a slower machine), its process peaking at 269 MB
instead of 701, and loads in a sixth of the time (`benchmarks/bench_embed.py`); vectors equal
sentence-transformers' within float32 rounding (`tests/test_embedding_onnx.py`: cosine >= 0.9999).

The weight matrices are inputs of the graph, fed with every pass (NumPy arrays are read in place), not
initializers: a session holding them as initializers kept ~180 MB for the 86 MB of weights (the parsed
model's copy besides its own tensors, whatever the optimisation level or prepacking), and took 0.3-1.3 s to
build; fed, the process holds the weights once (the embedding tables stay mapped from the model file:
only the rows of tokens seen are read), the session builds in ~10 ms, and a pass runs as fast (on 640 real
chunks, 6.2 s either way; the vectors are the same to 1e-7).

Texts of a call are sorted by length and run in passes of at most FORWARD_TOKENS padded tokens, so
padding stays small and a pass's activations stay bounded. `InferenceSession.run` is thread-safe (the fed
weights are only read); the session is created once per encoder, under a lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from caprl_index.embedding import onnx_proto as pb
from caprl_index.embedding.query import NumpyBertEncoder, read_weights
from caprl_index.errors import ConfigError

FORWARD_TOKENS = 1024  # padded tokens per pass: 512-1024 ran fastest on 2 cores, 4096 ~15% slower and +130 MB
_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


FED_BYTES = 1 << 16  # tensors at least this large are graph inputs fed with each pass, not initializers


def bert_model(w: dict[str, np.ndarray], *, layers: int, heads: int, eps: float) -> tuple[bytes, dict[str, np.ndarray]]:
    """A serialised ONNX model of a sentence-transformers BERT with mean pooling and normalisation, and the
    weights to feed it with every pass (name -> float32 array, views of `w` where no reshaping is needed).

    Inputs (batch B, padded length S; texts right-padded): `input_ids`, `token_type_ids` (int64 B x S),
    `mask` (float32 B x S: 1 for tokens, 0 for padding), `lengths` (int32 B), and the weights. Output
    `embedding`: B x dim unit vectors."""
    nodes: list[pb.Message] = []
    inits: list[pb.Message] = []
    fed: dict[str, np.ndarray] = {}

    def const(name: str, array: np.ndarray) -> str:
        if array.nbytes >= FED_BYTES:
            fed[name] = np.require(array, np.float32, "C")
        else:
            inits.append(pb.tensor(name, array))
        return name

    def op(kind: str, *inputs: str, domain: str = "", **attrs: object) -> str:
        out = f"n{len(nodes)}_{kind}"
        nodes.append(pb.node(kind, inputs, [out], domain, **attrs))
        return out

    def f32(name: str) -> np.ndarray:
        return np.asarray(w[name], dtype=np.float32)

    def dense(x: str, name: str) -> str:  # x @ W^T + b, the weight stored (out, in) as in PyTorch
        weight = const(name + ".weight", np.ascontiguousarray(f32(name + ".weight").T))
        return op("Add", op("MatMul", x, weight), const(name + ".bias", f32(name + ".bias")))

    def norm(x: str, name: str) -> str:
        return op("LayerNormalization", x, const(name + ".w", f32(name + ".weight")),
                  const(name + ".b", f32(name + ".bias")), axis=-1, epsilon=float(eps))  # fmt: skip

    e = "embeddings."
    seq = op("Gather", op("Shape", "input_ids"), const("one", np.array(1, np.int64)))
    positions = op("Range", const("zero", np.array(0, np.int64)), seq, "one")
    x = op("Add", op("Gather", const("word", f32(e + "word_embeddings.weight")), "input_ids"),
           op("Gather", const("position", f32(e + "position_embeddings.weight")), positions))  # fmt: skip
    x = op("Add", x, op("Gather", const("type", f32(e + "token_type_embeddings.weight")), "token_type_ids"))
    x = norm(x, e + "LayerNorm")
    for i in range(layers):
        p = f"encoder.layer.{i}."
        names = [f"{p}attention.self.{m}" for m in ("query", "key", "value")]
        qkv_w = np.ascontiguousarray(np.concatenate([f32(n + ".weight") for n in names]).T)
        qkv_b = np.concatenate([f32(n + ".bias") for n in names])
        attn = op("Attention", x, const(p + "qkv.weight", qkv_w), const(p + "qkv.bias", qkv_b), "lengths",
                  domain="com.microsoft", num_heads=heads)  # fmt: skip
        x = norm(op("Add", dense(attn, p + "attention.output.dense"), x), p + "attention.output.LayerNorm")
        h = op("Gelu", dense(x, p + "intermediate.dense"))
        x = norm(op("Add", dense(h, p + "output.dense"), x), p + "output.LayerNorm")
    mask = op("Unsqueeze", "mask", const("axis2", np.array([2], np.int64)))
    axis1 = const("axis1", np.array([1], np.int64))
    total = op("ReduceSum", op("Mul", x, mask), axis1, keepdims=0)
    count = op("Max", op("ReduceSum", mask, axis1, keepdims=0), const("min_count", np.array(1e-9, np.float32)))
    mean = op("Div", total, count)  # sentence-transformers' mean pooling (count clamped at 1e-9)
    length = op("ReduceL2", mean, const("last", np.array([-1], np.int64)), keepdims=1)
    length = op("Max", length, const("min_norm", np.array(1e-12, np.float32)))
    nodes.append(pb.node("Div", [mean, length], ["embedding"]))
    dim = int(w[e + "word_embeddings.weight"].shape[1])
    inputs = [pb.value_info("input_ids", pb.INT64, ["B", "S"]), pb.value_info("token_type_ids", pb.INT64, ["B", "S"]),
              pb.value_info("mask", pb.FLOAT, ["B", "S"]), pb.value_info("lengths", pb.INT32, ["B"])]  # fmt: skip
    inputs += [pb.value_info(name, pb.FLOAT, list(array.shape)) for name, array in fed.items()]
    outputs = [pb.value_info("embedding", pb.FLOAT, ["B", dim])]
    return pb.model(nodes, inits, inputs, outputs, {"": 20, "com.microsoft": 1}, name="sentence-bert"), fed


class OnnxBertEncoder(NumpyBertEncoder):
    """Embeds texts with a sentence-transformers BERT folder on ONNX Runtime (the session made on first use).

    Shares the folder checks, tokenizer and properties of the NumPy encoder; only the forward pass differs."""

    backend = "ONNX Runtime"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: Any = None
        self._fed: dict[str, np.ndarray] = {}

    def load(self) -> None:
        self._open_session()

    def _open_session(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                from caprl_index.memory import trim_heap

                options = ort.SessionOptions()
                options.intra_op_num_threads = _THREADS
                options.inter_op_num_threads = 1
                # No busy-waiting between passes: during an ingest the parser workers need those cycles.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.log_severity_level = 3
                weights = read_weights(self.folder)
                graph, fed = bert_model(weights, layers=self._layers, heads=self._heads, eps=self._eps)
                try:
                    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise ConfigError(
                        f"ONNX Runtime cannot run embedding model {self.name!r} ({exc}); "
                        "set CAPRL_EMBED_BACKEND=torch to embed with sentence-transformers"
                    ) from exc
                trim_heap()  # the weights read while joining and transposing them
                self._tokenizer = self._embedding_tokenizer()
                self._fed = fed
                self._session = session
        return self._session, self._tokenizer

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        session, tok = self._open_session()
        encodings = [tok.encode(text) for text in texts]
        vectors: list[list[float]] = [[] for _ in texts]
        for batch in self._padded_batches(encodings):
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros((len(batch), width), np.float32)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                types[row, :n] = encodings[i].type_ids
                mask[row, :n] = 1
            lengths = mask.sum(1).astype(np.int32)
            feeds = {"input_ids": ids, "token_type_ids": types, "mask": mask, "lengths": lengths, **self._fed}
            (out,) = session.run(["embedding"], feeds)
            for row, i in enumerate(batch):
                vectors[i] = out[row].tolist()
        return vectors

    def _padded_batches(self, encodings: list[Any]) -> Iterator[list[int]]:
        """Indexes of `encodings` in passes of similar length: sorted by length, each pass at most
        `batch_size` texts and `forward_tokens` tokens with its padding (one text alone may have more)."""
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        batch: list[int] = []
        for i in order:
            width = len(encodings[i].ids)  # the longest so far: the order is ascending
            if batch and (len(batch) >= self.batch_size or (len(batch) + 1) * width > self.forward_tokens):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch


def open_onnx_encoder(settings: Any) -> OnnxBertEncoder | None:
    """The ONNX Runtime encoder when the configured embedder is a local folder it can run; else None."""
    from caprl_index.embedding.query import model_folder

    folder = model_folder(settings)
    if folder is None:
        return None
    return OnnxBertEncoder(
        folder, settings.embed_model, batch_size=settings.embed_batch_size, forward_tokens=FORWARD_TOKENS
    )
