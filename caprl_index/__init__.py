"""caprl-index: make charts, infographics, diagrams and slides searchable.

    from caprl_index import Settings, ingest, Searcher
    ingest(["docs/"], Settings())
    Searcher(Settings()).search("revenue by region 2023")

LlamaIndex users: `from caprl_index.reader import CapRLReader`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from caprl_index.config import Settings
    from caprl_index.pipeline import IngestOptions, ingest
    from caprl_index.search import Hit, Searcher, SearchFilters

__all__ = ["Hit", "IngestOptions", "SearchFilters", "Searcher", "Settings", "__version__", "ingest"]

_LAZY = {
    "Settings": "caprl_index.config",
    "IngestOptions": "caprl_index.pipeline",
    "ingest": "caprl_index.pipeline",
    "Searcher": "caprl_index.search",
    "SearchFilters": "caprl_index.search",
    "Hit": "caprl_index.search",
}


def __getattr__(name: str) -> Any:
    # Nothing heavy at import time: `import caprl_index` stays instant.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
