"""The NumPy query encoder gives the same vectors as sentence-transformers, and search uses it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caprl_index.config import Settings
from caprl_index.embedding.query import NumpyBertEncoder, open_query_encoder, supported
from caprl_index.embedding.sentence import resolve_model
from caprl_index.search import Searcher

TEXTS = [
    "solar capacity",
    "How did the share of adults who smoke daily change between 2010 and 2020, by age group?",
    "Figure 3: Revenue (USD m) by region — Europe 41.2, Asia 37.9; growth +12% y/y.",
    "Ünïcödé, accents and 東京 characters",
    "",
    "word " * 600,  # longer than the model's 256 tokens: truncated like sentence-transformers does
]


@pytest.fixture(scope="module")
def encoder() -> NumpyBertEncoder:
    enc = open_query_encoder(Settings())
    assert enc is not None, "the packaged all-MiniLM-L6-v2 must run on the NumPy encoder"
    return enc


def test_vectors_match_sentence_transformers(encoder: NumpyBertEncoder, embedder) -> None:
    ours = np.asarray(encoder.embed(TEXTS))
    theirs = np.asarray(embedder.embed(TEXTS))
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() > 0.9999, cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert encoder.name == embedder.name  # the same model name as in the file records
    assert encoder.max_tokens == embedder.max_tokens == 256


def test_tokenizer_counts_like_the_model(encoder: NumpyBertEncoder, embedder) -> None:
    for text in TEXTS[:4]:
        assert len(encoder.tokenizer()(text)) == len(embedder.tokenizer()(text))


def test_other_models_fall_back_to_the_full_embedder(tmp_path: Path) -> None:
    packaged = Path(resolve_model("all-MiniLM-L6-v2"))
    assert supported(packaged)
    copy = tmp_path / "model"
    shutil.copytree(packaged, copy)
    pooling = copy / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg |= {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}
    pooling.write_text(json.dumps(cfg))
    assert not supported(copy)  # CLS pooling is not what the encoder computes
    assert open_query_encoder(Settings(embed_model=str(copy))) is None
    assert open_query_encoder(Settings(embed_model=str(tmp_path / "missing"))) is None
    assert open_query_encoder(Settings(embed_url="http://127.0.0.1:9/v1")) is None


def test_search_encodes_queries_without_importing_torch(tmp_path: Path) -> None:
    """What makes `caprl-index search` start in seconds: no torch / sentence-transformers import."""
    (tmp_path / "q").mkdir()  # an empty index folder: nothing to find
    code = (
        "import sys\n"
        "from caprl_index.config import Settings\n"
        "from caprl_index.search import Searcher\n"
        f"s = Searcher(Settings(qdrant_path={str(tmp_path / 'q')!r}))\n"
        "assert s.search('anything') == []\n"
        "assert len(s.embedder.embed(['a query'])[0]) == 384\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"
    searcher = Searcher(Settings(qdrant_path=tmp_path / "q2"))
    try:
        assert isinstance(searcher.embedder, NumpyBertEncoder)
    finally:
        searcher.close()


def test_weights_are_mapped_not_read(tmp_path: Path) -> None:
    """The model file is mapped read-only (a search touches a few of the word embeddings' rows): the
    same arrays as safetensors reads, and a file with another tensor type is read the ordinary way."""
    from safetensors.numpy import load_file, save_file

    from caprl_index.embedding.query import _map_tensors

    path = Path(resolve_model("all-MiniLM-L6-v2")) / "model.safetensors"
    mapped, read = _map_tensors(path), load_file(path)
    assert mapped is not None and set(mapped) == set(read)
    for name, array in read.items():
        assert mapped[name].dtype == array.dtype and np.array_equal(mapped[name], array), name
        assert isinstance(mapped[name], np.memmap), name
        assert not mapped[name].flags.writeable  # the forward pass never writes into the model
    half = tmp_path / "half.safetensors"
    save_file({"w": np.ones((2, 2), np.float16)}, str(half))
    assert _map_tensors(half) is None
