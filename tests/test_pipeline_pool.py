"""A worker process that dies on one file fails that file only: the pool is replaced and others retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile
from caprl_index.models import SourceFile
from caprl_index.pipeline import IngestOptions, _make_pool, _Run
from caprl_index.progress import Reporter
from tests.pool_helpers import die_if_hostile


def test_crashing_worker_fails_only_its_file(tmp_path: Path, embedder) -> None:
    settings = Settings(qdrant_path=tmp_path / "q", workers=2)
    run = _Run(settings, IngestOptions(), Reporter(), embedder)
    good = [SourceFile(path=f"/docs/good-{i}.pdf", sha256="0" * 64, size=1) for i in range(3)]
    bad = SourceFile(path="/docs/hostile.pdf", sha256="1" * 64, size=1)

    async def scenario() -> list:
        run._pool = _make_pool(2)
        try:
            calls = [run._in_pool(die_if_hostile, f) for f in [*good, bad]]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await run._shutdown()

    results = asyncio.run(scenario())
    assert results[:3] == [f.path for f in good]
    assert isinstance(results[3], CorruptFile) and results[3].path == bad.path
    assert "crashed" in results[3].reason


@pytest.mark.parametrize("workers", [1])
def test_single_worker_uses_a_thread(workers: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pool = _make_pool(workers)
    try:
        assert isinstance(pool, ThreadPoolExecutor)
    finally:
        pool.shutdown()
