"""Documents embedded by the NumPy encoder (`embed_backend` numpy): the same vectors as sentence-transformers.

The pipeline stores what `open_embedder` returns, so these vectors are the index; the query encoder's
tests (`test_embedding.py`) only cover what search computes. Held here: parity on document-shaped texts
(long ones truncated at 256 tokens, near-empty, non-ASCII, a whole batch of mixed lengths), batch against
one by one, the backend setting, and one encoder shared by threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from caprl_index.config import Settings
from caprl_index.embedding import open_embedder
from caprl_index.embedding.query import NumpyBertEncoder
from caprl_index.embedding.sentence import SentenceTransformerEmbedder
from caprl_index.errors import ConfigError

PARAGRAPH = (
    "Installed solar capacity reached 1.6 TW in 2023, up 32% on the year; China added 217 GW, the EU 56 GW "
    "and the United States 33 GW, while module prices fell below USD 0.15 per watt."
)
DOCUMENTS = [
    PARAGRAPH,
    PARAGRAPH * 6,  # ~330 tokens: cut at 256 exactly where sentence-transformers cuts
    " ".join(f"row {i}: {i * 1.5:.1f} GW" for i in range(400)),  # a table far over the window
    "-",
    " \n\t ",
    ".",
    "Ünïcödé — accents, 東京都の人口は約1400万人, Ελληνικά, العربية, emoji 🚀📈 and ligatures ﬁ ﬂ",
    "Figure 3: Revenue (USD m) by region — Europe 41.2, Asia 37.9; growth +12% y/y.",
    "Text in the chart: 2019 2020 2021 2022 2023\n45 52 61 70 83\nNearby text: Source: IEA.",
    "word " * 255,  # right at the window with the two special tokens
    "a",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


@pytest.fixture(scope="module")
def documents() -> NumpyBertEncoder:
    embedder = open_embedder(Settings(embed_backend="numpy"))
    assert type(embedder) is NumpyBertEncoder, "the packaged model's documents run on NumPy with numpy"
    return embedder


def test_document_vectors_match_sentence_transformers(documents: NumpyBertEncoder, embedder) -> None:
    ours, theirs = np.asarray(documents.embed(DOCUMENTS)), np.asarray(embedder.embed(DOCUMENTS))
    assert ours.shape == theirs.shape == (len(DOCUMENTS), 384)
    cosines = _cosines(ours, theirs)
    assert cosines.min() >= 0.9999, dict(zip(DOCUMENTS, cosines, strict=True))
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # The two long texts differ only after token 256, so truncation makes them one vector (in both).
    long_a, long_b = documents.embed([PARAGRAPH * 6, PARAGRAPH * 9])
    assert _cosines(np.asarray([long_a]), np.asarray([long_b]))[0] > 0.99999
    assert documents.name == embedder.name and documents.dim == embedder.dim == 384


def test_batch_equals_one_by_one(documents: NumpyBertEncoder) -> None:
    together = np.asarray(documents.embed(DOCUMENTS))
    alone = np.asarray([documents.embed([text])[0] for text in DOCUMENTS])
    small_batches = NumpyBertEncoder(documents.folder, documents.name, batch_size=3)
    assert _cosines(together, alone).min() > 0.99999
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(together, np.asarray(small_batches.embed(DOCUMENTS)), atol=1e-5)


def test_forward_passes_are_bounded_by_tokens(documents: NumpyBertEncoder) -> None:
    """A batch of 64 full-length chunks went through one pass of 16,000 tokens and raised the embedding
    process's peak by ~500 MB; passes are now cut at `forward_tokens`, with the same vectors."""
    import tracemalloc

    texts = [PARAGRAPH * 6, *DOCUMENTS] * 4  # ~1,900 tokens
    bounded = NumpyBertEncoder(documents.folder, documents.name, forward_tokens=400)
    unbounded = NumpyBertEncoder(documents.folder, documents.name, forward_tokens=10**9)
    _, tok = bounded._load()
    passes = list(bounded._batches([tok.encode(t) for t in texts]))
    assert len(passes) > 4 and sum(map(len, passes)) == len(texts)
    assert all(len(p) == 1 or sum(len(e.ids) for e in p) <= 400 for p in passes)
    peaks = []
    for encoder in (bounded, unbounded):
        encoder.embed(texts[:1])  # loaded before measuring
        tracemalloc.start()
        vectors = np.asarray(encoder.embed(texts))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert np.allclose(vectors, np.asarray(documents.embed(texts)), atol=1e-5)
    assert peaks[0] < peaks[1] / 2, [p >> 20 for p in peaks]


def test_backend_setting_picks_the_engine(tmp_path: Path) -> None:
    from caprl_index.embedding.onnx_bert import OnnxBertEncoder

    assert type(open_embedder(Settings())) is OnnxBertEncoder  # the default: auto = ONNX Runtime
    assert type(open_embedder(Settings(embed_backend="onnx"))) is OnnxBertEncoder
    assert type(open_embedder(Settings(embed_backend="numpy"))) is NumpyBertEncoder
    assert isinstance(open_embedder(Settings(embed_backend="torch")), SentenceTransformerEmbedder)
    # A model the two encoders cannot run: auto falls back to sentence-transformers, onnx/numpy say why not.
    other = str(tmp_path / "some-other-model")
    assert isinstance(open_embedder(Settings(embed_model=other, embed_backend="auto")), SentenceTransformerEmbedder)
    for backend in ("onnx", "numpy"):
        with pytest.raises(ConfigError, match=f"embed_backend {backend} cannot run .*CAPRL_EMBED_BACKEND"):
            open_embedder(Settings(embed_model=other, embed_backend=backend))


def embed_from_threads(encoder, threads: int = 4, rounds: int = 6, size: int = 5) -> list[tuple[str, list[float]]]:
    """`threads` threads, released at once, each embedding `rounds` random batches of DOCUMENTS with one
    shared encoder: every (text, vector) they got."""
    start = threading.Barrier(threads)

    def work(seed: int) -> list[tuple[str, list[float]]]:
        start.wait()
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(rounds):
            batch = [DOCUMENTS[i] for i in rng.choice(len(DOCUMENTS), size=size)]
            out.extend(zip(batch, encoder.embed(batch), strict=True))
        return out

    with ThreadPoolExecutor(threads) as pool:
        results = [pair for part in pool.map(work, range(threads)) for pair in part]
    assert len(results) == threads * rounds * size
    return results


def test_one_encoder_shared_by_threads(documents: NumpyBertEncoder) -> None:
    """The encoder holds no per-call state (its tokenizer's truncation is set once, at load), so threads
    may share it: four threads embedding different batches at once get the vectors of a lone call."""
    reference = {text: np.asarray(documents.embed([text])[0]) for text in DOCUMENTS}
    shared = NumpyBertEncoder(documents.folder, documents.name)  # loads under the race below
    for text, vector in embed_from_threads(shared):
        assert np.allclose(vector, reference[text], atol=1e-5), text
