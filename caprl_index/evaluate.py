"""Page-level retrieval evaluation: recall@1/5/10 and MRR over a JSONL of questions with gold pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caprl_index.errors import ConfigError
from caprl_index.search import Searcher

CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class Query:
    question: str
    file: str  # absolute path
    page: int  # 1-based


def load_queries(path: str | Path) -> list[Query]:
    """Read `question`, `file` (relative to the JSONL's folder, or absolute) and `page` from each line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such queries file")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file = Path(row["file"])
            out.append(Query(str(row["question"]), str((path.parent / file).resolve()), int(row["page"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: need JSON with question, file and page ({exc})") from exc
    return out


def rank_of_gold(searcher: Searcher, query: Query, k: int) -> int | None:
    """1-based rank of the gold page among the top-k distinct pages, or None."""
    hits = searcher.search(query.question, k=k, group_by_page=True)
    for rank, hit in enumerate(hits, 1):
        if hit.file_path == query.file and hit.page == query.page:
            return rank
    return None


def evaluate(searcher: Searcher, queries: list[Query], k: int = 10) -> dict[str, Any]:
    """Metrics as an object with keys n, recall@1, recall@5, recall@10, mrr (and per-query ranks)."""
    k = max(k, *CUTOFFS)
    ranks = [rank_of_gold(searcher, q, k) for q in queries]
    n = len(queries)
    metrics: dict[str, Any] = {"n": n}
    for cut in CUTOFFS:
        metrics[f"recall@{cut}"] = round(sum(1 for r in ranks if r and r <= cut) / n, 4) if n else 0.0
    metrics["mrr"] = round(sum(1.0 / r for r in ranks if r) / n, 4) if n else 0.0
    metrics["ranks"] = ranks
    return metrics
