"""`caprl-index migrate` turns a previous release's index into an Edge index with the same points (no
re-embedding, no re-captioning); `push` refuses what it cannot do with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from caprl_index.cli import main
from caprl_index.config import Settings
from caprl_index.pipeline import ingest
from caprl_index.store import QdrantStore
from caprl_index.store.server import ServerEngine
from caprl_index.testing.index import all_points
from tests.conftest import EXAMPLES, free_port

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_an_old_index_is_recognised_and_migrated_in_place(tmp_path: Path, capsys, embedder) -> None:
    settings = Settings(captioner="none", workers=1)
    # The previous release's embedded store: qdrant-client local mode in the index folder.
    old = QdrantStore(settings, engine=ServerEngine(QdrantClient(path=str(settings.qdrant_path)), "caprl"))
    ingest([EXAMPLES / "solar-market-report-2024.pdf"], settings, embedder=embedder, store=old)
    client = QdrantClient(path=str(settings.qdrant_path))
    before = {str(p.id): p.payload for p in client.scroll("caprl", limit=1000, with_payload=True)[0]}
    client.close()

    code, _, err = run(capsys, "status")
    assert code == 2 and "caprl-index migrate" in err
    code, _, err = run(capsys, "migrate")
    assert code == 0 and f"{len(before)} points, 1 file records" in err and "qdrant.pre-edge" in err
    after = {p.id: p.payload for p in all_points(Settings())}
    assert after == before
    status = json.loads(run(capsys, "status", "--json")[1])
    assert status["files"] == 1 and status["points"] == len(before) and status["incomplete"] == []
    code, out, _ = run(capsys, "search", "battery storage prices by year", "--json", "-k", "1")
    assert code == 0 and json.loads(out)[0]["page"] == 3
    code, _, err = run(capsys, "ingest", str(EXAMPLES / "solar-market-report-2024.pdf"), "--captioner", "none")
    assert code == 0 and "1 indexed" not in err  # still indexed: nothing is done again


def test_push_needs_a_server_and_an_embedded_index(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "push")
    assert code == 2 and "--qdrant-url" in err
    code, _, err = run(capsys, "push", "--to", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "no embedded index" in err
    (Path(Settings().qdrant_path) / "edge").mkdir(parents=True)
    code, _, err = run(capsys, "push", "--to", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "cannot reach Qdrant" in err
