"""Documents embedded on ONNX Runtime (`embed_backend` auto, the default): the same vectors as sentence-transformers.

The pipeline stores what `open_embedder` returns, so these vectors are the index. Held here: parity with
sentence-transformers on document-shaped texts (the NumPy tests' set: truncated, near-empty, non-ASCII,
mixed lengths), a batch against one by one, passes bounded by padded tokens, one encoder shared by
threads, the protobuf writer's encodings, and a model ONNX Runtime rejects reported as a ConfigError.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from caprl_index.config import Settings
from caprl_index.embedding import onnx_proto as pb
from caprl_index.embedding.onnx_bert import OnnxBertEncoder, open_onnx_encoder
from caprl_index.errors import ConfigError
from tests.test_embedding_documents import DOCUMENTS, PARAGRAPH, _cosines, embed_from_threads


@pytest.fixture(scope="module")
def documents() -> OnnxBertEncoder:
    encoder = open_onnx_encoder(Settings())
    assert encoder is not None
    return encoder


def test_document_vectors_match_sentence_transformers(documents: OnnxBertEncoder, embedder) -> None:
    ours, theirs = np.asarray(documents.embed(DOCUMENTS)), np.asarray(embedder.embed(DOCUMENTS))
    assert ours.shape == theirs.shape == (len(DOCUMENTS), 384)
    cosines = _cosines(ours, theirs)
    assert cosines.min() >= 0.9999, dict(zip(DOCUMENTS, cosines, strict=True))
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    long_a, long_b = documents.embed([PARAGRAPH * 6, PARAGRAPH * 9])  # equal up to token 256: truncated alike
    assert _cosines(np.asarray([long_a]), np.asarray([long_b]))[0] > 0.99999
    assert documents.name == embedder.name and documents.dim == embedder.dim == 384
    assert documents.max_tokens == embedder.max_tokens == 256


def test_padding_does_not_change_a_vector(documents: OnnxBertEncoder) -> None:
    """A short text padded beside a long one (attention and mean pooling must ignore the padding) and a
    batch in another order give the vectors of each text alone."""
    together = np.asarray(documents.embed(DOCUMENTS))
    alone = np.asarray([documents.embed([text])[0] for text in DOCUMENTS])
    assert np.allclose(together, alone, atol=1e-5)
    reversed_order = np.asarray(documents.embed(DOCUMENTS[::-1]))[::-1]
    assert np.allclose(together, reversed_order, atol=1e-5)
    padded = np.asarray(documents.embed(["a", "word " * 255]))  # one token of text, 256 of padding
    assert np.allclose(padded[0], alone[DOCUMENTS.index("a")], atol=1e-5)


def test_passes_are_bounded_by_padded_tokens(documents: OnnxBertEncoder) -> None:
    tok = documents._open_session()[1]
    texts = [PARAGRAPH * 6, *DOCUMENTS] * 4
    encodings = [tok.encode(t) for t in texts]
    small = OnnxBertEncoder(documents.folder, documents.name, forward_tokens=400, batch_size=5)
    passes = list(small._padded_batches(encodings))
    assert sorted(i for p in passes for i in p) == list(range(len(texts)))
    for p in passes:
        width = max(len(encodings[i].ids) for i in p)
        assert len(p) <= 5 and (len(p) == 1 or len(p) * width <= 400), (len(p), width)
    assert len(passes) >= len(texts) // 5
    assert np.allclose(np.asarray(small.embed(texts)), np.asarray(documents.embed(texts)), atol=1e-5)


def test_one_encoder_shared_by_threads(documents: OnnxBertEncoder) -> None:
    """Four threads share one encoder that loads under their race: one session is made, and every
    vector equals that of a lone call."""
    reference = {text: np.asarray(documents.embed([text])[0]) for text in DOCUMENTS}
    shared = OnnxBertEncoder(documents.folder, documents.name)
    sessions = []
    real_open = shared._open_session

    def counted() -> tuple[object, object]:
        out = real_open()
        sessions.append(id(out[0]))
        return out

    shared._open_session = counted  # type: ignore[method-assign]
    results = embed_from_threads(shared)
    assert len(set(sessions)) == 1
    for text, vector in results:
        assert np.allclose(vector, reference[text], atol=1e-5), text


def test_protobuf_encodings() -> None:
    """Wire format spot checks against bytes the reference protobuf encoder writes for these values."""
    assert pb._varint(0) == b"\x00" and pb._varint(300) == b"\xac\x02"
    assert pb._varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes of two's complement
    assert b"".join(pb.attribute("axis", -1)) == b"\x0a\x04axis\x18" + b"\xff" * 9 + b"\x01" + b"\xa0\x01\x02"
    assert b"".join(pb.attribute("epsilon", 0.5)) == b"\x0a\x07epsilon\x15\x00\x00\x00\x3f\xa0\x01\x01"
    scalar = b"".join(pb.tensor("one", np.array(1, np.int64)))
    assert scalar == b"\x10\x07\x42\x03one\x4a\x08" + (1).to_bytes(8, "little")  # no dims: a scalar stays 0-D
    matrix = b"".join(pb.tensor("m", np.arange(6, dtype=np.float32).reshape(2, 3).T))  # not contiguous
    assert matrix.startswith(b"\x08\x03\x08\x02\x10\x01\x42\x01m\x4a\x18")
    assert matrix.endswith(np.arange(6, dtype=np.float32).reshape(2, 3).T.copy().tobytes())


def test_a_graph_onnx_runtime_rejects_is_a_config_error(documents: OnnxBertEncoder, monkeypatch) -> None:
    import caprl_index.embedding.onnx_bert as onnx_bert

    broken = OnnxBertEncoder(documents.folder, documents.name)
    monkeypatch.setattr(onnx_bert, "bert_model", lambda *a, **k: (b"not a model", {}))
    with pytest.raises(ConfigError, match="CAPRL_EMBED_BACKEND=torch") as info:
        broken.embed(["text"])
    assert "all-MiniLM-L6-v2" in str(info.value) and "\n" not in str(info.value).split(" (")[0]


def test_no_torch_and_a_lean_process() -> None:
    """Embedding documents with the default settings imports neither torch nor sentence-transformers."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from caprl_index.config import Settings\n"
        "from caprl_index.embedding import open_embedder\n"
        "e = open_embedder(Settings())\n"
        "assert len(e.embed(['a chart of revenue by region'] * 3)) == 3\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_ingest_builds_the_session_while_pages_parse(documents: OnnxBertEncoder, tmp_path) -> None:
    """The pipeline loads the model at its start, on the embedding thread (the only thread that embeds),
    before the first batch arrives; a model that cannot load fails the run with a one-line ConfigError."""
    import shutil

    from caprl_index.pipeline import ingest
    from tests.conftest import EXAMPLES

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    calls: list[tuple[str, str]] = []

    class Recording(OnnxBertEncoder):
        def load(self) -> None:
            calls.append(("load", threading.current_thread().name))
            super().load()

        def embed(self, texts: list[str]) -> list[list[float]]:
            calls.append(("embed", threading.current_thread().name))
            return super().embed(texts)

    settings = Settings(qdrant_path=tmp_path / "q", workers=1, figures=False, captioner="none")
    recording = Recording(documents.folder, documents.name)
    stats = ingest([docs], settings, embedder=recording)
    assert stats.files_indexed == 1 and stats.points > 0
    assert calls[0][0] == "load" and any(kind == "embed" for kind, _ in calls)
    assert len({thread for _, thread in calls}) == 1, calls  # load and every embed on the one embed thread

    class Broken(OnnxBertEncoder):
        def load(self) -> None:
            raise ConfigError("ONNX Runtime cannot run embedding model 'x' (bad); set CAPRL_EMBED_BACKEND=torch")

    with pytest.raises(ConfigError, match="CAPRL_EMBED_BACKEND=torch"):
        ingest([docs], Settings(qdrant_path=tmp_path / "q2", workers=1, figures=False, captioner="none"),
               embedder=Broken(documents.folder, documents.name))  # fmt: skip


def test_weights_are_fed_not_held_twice(documents: OnnxBertEncoder) -> None:
    """The serialised graph carries no weight matrix: each is a graph input fed with every pass (the
    session kept two copies of initializers, ~180 MB for the 86 MB model); the embedding tables are the
    model file's mapped pages, not copies."""
    from caprl_index.embedding.onnx_bert import FED_BYTES, bert_model
    from caprl_index.embedding.query import read_weights

    weights = read_weights(documents.folder)
    graph, fed = bert_model(weights, layers=6, heads=12, eps=1e-12)
    assert len(graph) < 256 << 10, len(graph)
    assert sum(a.nbytes for a in fed.values()) > 0.95 * sum(a.nbytes for a in weights.values())
    assert all(a.dtype == np.float32 and a.flags.c_contiguous and a.nbytes >= FED_BYTES for a in fed.values())
    assert np.shares_memory(fed["word"], weights["embeddings.word_embeddings.weight"])
    session, _ = documents._open_session()
    names = {i.name for i in session.get_inputs()}
    assert set(fed) <= names and len(names) == len(fed) + 4
