"""BM25-style sparse vectors for Qdrant's full-text side of hybrid search.

Documents carry BM25's saturated term frequency; Qdrant applies IDF at query time (`Modifier.IDF`), so the
dot product of a query's term set with a document vector is BM25. Terms map to indices by a stable hash,
so no vocabulary is stored.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

K1 = 1.2
B = 0.75
AVG_DOC_TOKENS = 120.0  # typical chunk length in words; BM25's length normalisation needs one

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its of on or that the this to was were will "
    "with what which who how when where why does did do can".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stop words, lightly stemmed (plural s)."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOPWORDS:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def _index(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse (indices, values) of a stored chunk."""
    tokens = tokenize(text)
    if not tokens:
        return [], []
    norm = K1 * (1 - B + B * len(tokens) / AVG_DOC_TOKENS)
    weights: dict[int, float] = {}
    for tok, tf in Counter(tokens).items():
        idx = _index(tok)
        weights[idx] = weights.get(idx, 0.0) + tf * (K1 + 1) / (tf + norm)
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse (indices, values) of a query: each distinct term once."""
    indices = sorted({_index(tok) for tok in tokenize(text)})
    return indices, [1.0] * len(indices)
