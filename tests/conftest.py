"""Shared fixtures: isolated configuration, the loopback vLLM server, paths to example and shared data."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "docs"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CAPRL_* from the developer's shell or a caprl-index.toml in the working folder leaks into tests."""
    for key in list(os.environ):
        if key.startswith("CAPRL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CAPRL_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("CAPRL_QDRANT_PATH", str(tmp_path / "index" / "qdrant"))
    monkeypatch.setenv("CAPRL_VLLM_URL", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """`caprl-index` binds the root log handler to the stderr of its call; a test's captured stderr is
    closed after it, so the handler goes with the test (library calls in a later test would log into a
    closed stream)."""
    import logging

    yield
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)


def free_port() -> int:
    """A loopback port with nothing listening on it (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake_vllm() -> Iterator:
    from caprl_index.testing.fake_vllm import FakeVLLM

    with FakeVLLM(model="caprl") as server:
        yield server


@pytest.fixture(scope="session")
def embedder():
    """The packaged all-MiniLM-L6-v2, loaded once per test session."""
    from caprl_index.embedding.sentence import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder()
    emb.embed(["warm up"])
    return emb


def shared(*parts: str) -> Path:
    """A path in ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path
