"""Indexes for the LlamaIndex tests: examples/docs ingested once per session, handed out as copies.

`edge_copy` gives a test its own embedded index (Qdrant Edge) of the three example documents as the CLI
builds it; `server_copy` the same points in a server-mode collection (qdrant-client's in-process API
standing in for a server), copied point for point so both engines hold exactly the same index.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient

from caprl_index.config import Settings
from caprl_index.store import QdrantStore
from caprl_index.store.edge import EdgeEngine
from caprl_index.store.server import ServerEngine
from caprl_index.store.transfer import copy_index
from tests.conftest import EXAMPLES, free_port

REPORT = (EXAMPLES / "solar-market-report-2024.pdf").resolve()
INFOGRAPHIC = (EXAMPLES / "city-transit-infographic.pdf").resolve()
DECK = (EXAMPLES / "quarterly-review.pptx").resolve()
COLLECTION = "caprl"


def settings_at(root: Path, **kw: Any) -> Settings:
    """Settings for an index under `root` that touch nothing outside it (no vLLM, one parser process)."""
    base: dict[str, Any] = {
        "qdrant_path": root / "qdrant",
        "vllm_url": f"http://127.0.0.1:{free_port()}/v1",
        "captioner": "none",
        "workers": 1,
        "collection": COLLECTION,
    }
    return Settings(**(base | kw))


@cache
def _built(embedder: Any) -> Path:
    from caprl_index.pipeline import ingest

    root = Path(tempfile.mkdtemp(prefix="caprl-llama-index-"))
    atexit.register(shutil.rmtree, root, True)
    stats = ingest([EXAMPLES], settings_at(root), embedder=embedder)
    assert stats.files_indexed == 3 and stats.figures >= 8, stats
    return root


def edge_copy(dest: Path, embedder: Any) -> Settings:
    """A fresh copy of the example index (embedded engine) at `dest`; its settings."""
    shutil.copytree(_built(embedder), dest, dirs_exist_ok=True)
    return settings_at(dest)


def server_copy(dest: Path, embedder: Any) -> QdrantStore:
    """The example index in a server-mode collection at `dest` (closes with the store)."""
    settings = edge_copy(dest / "edge", embedder)
    server = ServerEngine(QdrantClient(path=str(dest / "server")), COLLECTION)
    source = EdgeEngine(settings.qdrant_path, COLLECTION)
    try:
        copy_index(source, server)
    finally:
        source.close()
    return QdrantStore(settings, engine=server)
