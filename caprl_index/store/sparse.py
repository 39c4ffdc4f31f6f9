"""BM25-style sparse vectors for Qdrant's full-text side of hybrid search.

Documents carry BM25's saturated term frequency; Qdrant applies IDF at query time (`Modifier.IDF`), so the
dot product of a query's term set with a document vector is BM25. Terms map to indices by a stable hash,
so no vocabulary is stored.

Besides words, references such as "Figure 3", "Fig. 3" or "Table IV" become one extra term each
("figure 3"): a question that names a figure or table then matches the chunk that prints that label far
more specifically than the words "figure" and "3" apart, which are everywhere in a long document.
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


# Bumped when the terms change: stored sparse vectors of older versions are re-ingested.
VERSION = 2

# Labels whose number identifies one thing in a document; abbreviations map to the full word.
_LABELS = {"fig": "figure", "tab": "table"} | {
    w: w for w in ("figure", "table", "chart", "exhibit", "graph", "diagram", "section", "chapter", "appendix")
}
_LABEL_REF = re.compile(
    r"\b(figure|fig|table|tab|chart|exhibit|graph|diagram|section|chapter|appendix)s?"
    r"(?:\.?\s*(\d+(?:\.\d+)*[a-z]?)|(?:\.\s*|\s+)([ivx]+|[a-h]))\b",
    re.IGNORECASE,
)  # fmt: skip


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stop words, lightly stemmed (plural s)."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOPWORDS:
            continue
        if tok == "fig":
            tok = "figure"
        elif len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def label_refs(text: str) -> list[str]:
    """One term per label reference: "Fig. 3" and "figure 3" both give "figure 3"."""
    out = []
    for m in _LABEL_REF.finditer(text):
        label, number = _LABELS[m[1].lower()], (m[2] or m[3]).lower()
        out.append(f"{label} {number}")
        if m[2] and number[-1].isalpha():
            out.append(f"{label} {number[:-1]}")  # "Figure 2a" is part of "Figure 2"
    return out


def terms(text: str) -> list[str]:
    """Everything the sparse vectors count: word tokens, then label references."""
    return tokenize(text) + label_refs(text)


def _index(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse (indices, values) of a stored chunk."""
    tokens = terms(text)
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
    indices = sorted({_index(tok) for tok in terms(text)})
    return indices, [1.0] * len(indices)
