"""Synthetic store points with the real shapes, for engine tests and the store benchmark.

Payloads start from what `store.payload.payload` writes for a real text chunk, figure and slide (LlamaIndex's
`_node_content` JSON string included), then vary per point; building each one through LlamaIndex would cost
~1.4 ms a point, 20 minutes at a million. Texts are drawn from a Zipf-distributed vocabulary, so BM25 posting
lists are long for common words and short for rare ones, as in real documents; the sparse vectors are the
project's own `sparse.document_vector`. Dense vectors are unit-length random 384-d vectors. A batch is a
pure function of its start and size, so it can be regenerated anywhere (the benchmark streams batches instead
of holding a million points in memory).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np

from caprl_index.store.engine import NAMESPACE, NewPoint, PointFilter, Sparse
from caprl_index.store.sparse import AVG_DOC_TOKENS, K1, B, document_vector, query_vector

POINTS_PER_FILE = 200
POINTS_PER_PAGE = 8
_VOCAB = 30_000


@dataclass(frozen=True)
class SyntheticQuery:
    """A query with both vectors, and a filter that selects a few percent of the points."""

    text: str
    dense: list[float]
    sparse: Sparse
    flt: PointFilter


def point_uuid(i: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"synthetic:{i}"))


def file_path(file_index: int) -> str:
    return f"/corpus/reports/report-{file_index:06d}.pdf"


@cache
def _words() -> list[str]:
    rng = np.random.default_rng(7)
    syllables = ["ka", "lo", "mi", "ren", "tas", "vel", "do", "sun", "pra", "qui", "zen", "bor", "ia", "nu"]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < _VOCAB:
        word = "".join(rng.choice(syllables, size=int(rng.integers(2, 5))))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


@cache
def _word_terms() -> tuple[np.ndarray, np.ndarray]:
    """Each vocabulary word's sparse index (crc32 of its BM25 term) and a dense term number for counting."""
    indices = np.array([document_vector(w)[0][0] for w in _words()], dtype=np.int64)
    unique, term_of_word = np.unique(indices, return_inverse=True)
    return unique, term_of_word


def _text_and_sparse(ranks: np.ndarray) -> tuple[str, Sparse]:
    """The text of these vocabulary ranks and its BM25 vector, equal to `sparse.document_vector(text)` (a
    test checks it) but counted with numpy: the synthetic words hold no stop words or labels, one term each."""
    words = _words()
    text = " ".join([words[r] for r in ranks.tolist()])
    unique, term_of_word = _word_terms()
    terms, tf = np.unique(term_of_word[ranks], return_counts=True)
    norm = K1 * (1 - B + B * len(ranks) / AVG_DOC_TOKENS)
    weights = tf * (K1 + 1) / (tf + norm)
    return text, (unique[terms].tolist(), weights.tolist())


@cache
def _templates() -> dict[str, dict[str, Any]]:
    """A real payload per kind, made by the project's own payload builder."""
    from caprl_index.models import Caption, Chunk, Figure, Page, SourceFile
    from caprl_index.store.payload import payload

    src = SourceFile(path=file_path(0), sha256="0" * 64, size=1)
    page = Page(number=1, width=595.0, height=842.0, text="")
    fig = Figure(
        kind="figure", figure_type="chart", bbox=(50.0, 100.0, 400.0, 380.0), image=b"", mime="image/png",
        image_sha256="1" * 64, region_index=0,
    )  # fmt: skip
    slide = Figure(
        kind="page", figure_type="slide", bbox=(0.0, 0.0, 595.0, 842.0), image=b"", mime="image/png",
        image_sha256="2" * 64, region_index=0,
    )  # fmt: skip
    cap = Caption(text="", source="vllm", model="caprl", prompt_version="capRL-v1")
    chunks = {
        "text": Chunk(text="", file=src, page_count=1, page=page, kind="text", chunk_index=0),
        "figure": Chunk(text="", file=src, page_count=1, page=page, kind="figure", chunk_index=0, figure=fig,
                        caption=cap, region_index=0),
        "page": Chunk(text="", file=src, page_count=1, page=page, kind="page", chunk_index=0, figure=slide,
                      caption=cap, region_index=0),
    }  # fmt: skip
    return {kind: payload(chunk) for kind, chunk in chunks.items()}


@cache
def _nodes() -> dict[str, dict[str, Any]]:
    return {kind: json.loads(p["_node_content"]) for kind, p in _templates().items()}


@lru_cache(maxsize=64)
def _doc_id(file_index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"file:{file_path(file_index)}"))


@lru_cache(maxsize=64)
def _file_sha(file_index: int) -> str:
    return uuid.uuid5(NAMESPACE, f"sha:{file_index}").hex * 2


def _kind(i: int) -> str:
    return "figure" if i % 7 == 3 else "page" if i % 23 == 5 else "text"


def synthetic_payload(i: int, text: str) -> dict[str, Any]:
    """Point `i`'s payload: the real template of its kind with this point's file, page, box and text."""
    kind = _kind(i)
    out = dict(_templates()[kind])
    f = i // POINTS_PER_FILE
    meta: dict[str, Any] = {
        "file_path": file_path(f),
        "file_name": f"report-{f:06d}.pdf",
        "file_sha256": _file_sha(f),
        "page": (i % POINTS_PER_FILE) // POINTS_PER_PAGE + 1,
        "page_count": POINTS_PER_FILE // POINTS_PER_PAGE,
        "chunk_index": i % POINTS_PER_PAGE,
    }
    if kind != "text":
        meta["image_sha256"] = uuid.uuid5(NAMESPACE, f"img:{i}").hex * 2
        meta["bbox"] = [50.0, 100.0 + i % 50, 400.5, 380.25] if kind == "figure" else [0.0, 0.0, 595.0, 842.0]
        meta["image_uri"] = f"images/{meta['image_sha256'][:2]}/{meta['image_sha256']}.png"
    doc_id = _doc_id(f)
    node = dict(_nodes()[kind], id_=point_uuid(i), text=text)
    node["metadata"] = {**node["metadata"], **meta}
    node["relationships"] = {"1": {**node["relationships"]["1"], "node_id": doc_id}}
    out.update(meta, text=text, doc_id=doc_id, document_id=doc_id, ref_doc_id=doc_id)
    out["page_image_uri"] = f"pages/{meta['file_sha256'][:16]}/{meta['page']}.png"
    out["_node_content"] = json.dumps(node)
    return out


def synthetic_points(start: int, count: int, *, dim: int = 384) -> list[NewPoint]:
    """Points `start` .. `start + count - 1`; the same arguments always give the same points."""
    rng = np.random.default_rng([start, count, dim])
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lengths = rng.integers(40, 160, size=count)
    ranks = np.minimum(rng.zipf(1.3, size=int(lengths.sum())), _VOCAB) - 1
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    out = []
    for k, i in enumerate(range(start, start + count)):
        text, sparse = _text_and_sparse(ranks[bounds[k] : bounds[k + 1]])
        out.append(NewPoint(point_uuid(i), vectors[k].tolist(), sparse, synthetic_payload(i, text)))
    return out


def synthetic_queries(n: int, total: int, *, dim: int = 384, seed: int = 1) -> list[SyntheticQuery]:
    """`n` queries over an index of `total` points: four mid-frequency words, a random unit vector, and a
    filter on kind and a run of files (as a `--file` glob resolves) that keeps about 5% of the points."""
    rng = np.random.default_rng(seed)
    words = _words()
    files = max(1, total // POINTS_PER_FILE)
    out = []
    for _ in range(n):
        text = " ".join(words[int(r)] for r in rng.integers(20, 2000, size=4))
        vec = rng.standard_normal(dim).astype(np.float32)
        vec /= np.linalg.norm(vec)
        first = int(rng.integers(0, files))
        paths = tuple(file_path((first + k) % files) for k in range(max(1, files // 20)))
        flt = PointFilter(kinds=("text", "figure"), file_paths=paths)
        out.append(SyntheticQuery(text, vec.tolist(), query_vector(text), flt))
    return out
