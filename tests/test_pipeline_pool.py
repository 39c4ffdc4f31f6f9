"""A worker process that dies on one file fails that file only: the pool is replaced and others retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile
from caprl_index.models import SourceFile
from caprl_index.pipeline import IngestOptions, _Run
from caprl_index.progress import Reporter
from caprl_index.workers import SplitPool, make_pool
from tests.pool_helpers import die_if_hostile, mark_teardown


def test_crashing_worker_fails_only_its_file(tmp_path: Path, embedder) -> None:
    settings = Settings(qdrant_path=tmp_path / "q", workers=2)
    run = _Run(settings, IngestOptions(), Reporter(), embedder, None)
    good = [SourceFile(path=f"/docs/good-{i}.pdf", sha256="0" * 64, size=1) for i in range(3)]
    bad = SourceFile(path="/docs/hostile.pdf", sha256="1" * 64, size=1)

    async def scenario() -> list:
        run._split = SplitPool(2)
        try:
            calls = [run._in_pool(die_if_hostile, f) for f in [*good, bad]]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await run._shutdown()

    results = asyncio.run(scenario())
    assert results[:3] == [f.path for f in good]
    assert isinstance(results[3], CorruptFile) and results[3].path == bad.path
    assert "crashed" in results[3].reason


def test_parser_processes_end_without_tearing_their_interpreter_down(tmp_path: Path) -> None:
    """At shutdown a parser process ends once its work loop returns: its modules are not torn down (that took
    0.1-0.3 s while the pool waited, at the end of every run). Every answer still arrives and the processes
    are gone. An object kept in a worker marks a teardown by writing its file."""
    import psutil

    pool = SplitPool(2, ocr_process=False)

    async def scenario() -> list[int]:
        return await asyncio.gather(*(pool.run(mark_teardown, str(tmp_path / f"torn-{i}")) for i in range(8)))

    try:
        pids = set(asyncio.run(scenario()))
    finally:
        pool.shutdown()
    assert pids and not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids)
    marks = sorted(tmp_path.glob("torn-*"))
    assert len(marks) == 8 and [m.read_bytes() for m in marks] == [b""] * 8


@pytest.mark.parametrize("workers", [1])
def test_single_worker_uses_a_thread(workers: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pool = make_pool(workers)
    try:
        assert isinstance(pool, ThreadPoolExecutor)
    finally:
        pool.shutdown()


def test_page_text_is_stored_while_figures_are_still_being_captioned(tmp_path: Path, embedder) -> None:
    """Text chunks do not wait for the GPU: they are embedded before the first (slow) caption returns."""
    import shutil
    import time

    from caprl_index.pipeline import ingest
    from caprl_index.testing.fake_vllm import FakeVLLM
    from tests.conftest import EXAMPLES

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")

    class Recording:
        def __init__(self, inner) -> None:
            self.inner, self.name, self.calls = inner, inner.name, []

        dim = property(lambda self: self.inner.dim)
        max_tokens = property(lambda self: self.inner.max_tokens)

        def tokenizer(self):
            return self.inner.tokenizer()

        def embed(self, texts):
            self.calls.append((time.time(), list(texts)))
            return self.inner.embed(texts)

    rec = Recording(embedder)
    with FakeVLLM(latency_s=3.0) as srv:
        settings = Settings(vllm_url=[srv.url], captioner="vllm", qdrant_path=tmp_path / "q", workers=1)
        stats = ingest([docs], settings, embedder=rec)
        first_caption_done = min(end for _, end in srv.slot_times)
    assert stats.files_indexed == 1 and stats.figures > 0
    text_calls = [t for t, texts in rec.calls if texts and not any("Text in the" in x for x in texts)]
    assert text_calls and min(text_calls) < first_caption_done - 1.0


class _SlowModel:
    """The real embedder, with a model that takes a while to load (torch on a busy machine)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.name = inner, inner.name

    @property
    def dim(self) -> int:
        import time

        time.sleep(1.5)
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def tokenizer(self):  # type: ignore[no-untyped-def]
        return self.inner.tokenizer()

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed(texts)


def test_a_run_that_ends_while_the_model_loads_stops_the_load(tmp_path: Path, embedder) -> None:
    """A run can end before the model has loaded (`--strict` on a bad file, vLLM required and gone). The
    loading task used to go on after the run's threads were shut down, fail on them, and asyncio printed
    its traceback ("Task exception was never retrieved") when the task was collected."""

    async def scenario() -> asyncio.Future:
        settings = Settings(qdrant_path=tmp_path / "q", workers=1, figures=False)
        run = _Run(settings, IngestOptions(), Reporter(), _SlowModel(embedder), None, None)
        run._chunker_ready = asyncio.ensure_future(run._load_model())
        await asyncio.sleep(0.2)  # the model is loading on its thread
        await run._shutdown()
        await asyncio.sleep(0.5)  # the loop runs on, as it does while asyncio.run winds down
        return run._chunker_ready

    task = asyncio.run(scenario())
    assert task.cancelled()  # not failed on a shut-down thread, nor left running


def test_workers_start_while_the_captioner_looks_for_its_server(tmp_path: Path, embedder, monkeypatch) -> None:
    """Finding the caption server takes a network round trip (its 5 s connect timeout for a host that
    drops packets): the parser processes and the model's load are started before it, not after."""
    import shutil

    import caprl_index.captioning as captioning
    import caprl_index.pipeline as pipeline
    from caprl_index.pipeline import ingest
    from tests.conftest import EXAMPLES

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    events: list[str] = []
    real_pool, real_open = pipeline.SplitPool, captioning.open_captioner

    def pool(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("workers")
        return real_pool(*args, **kwargs)

    async def open_captioner(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("probe")
        await asyncio.sleep(0.2)
        return await real_open(*args, **kwargs)

    monkeypatch.setattr(pipeline, "SplitPool", pool)
    monkeypatch.setattr(captioning, "open_captioner", open_captioner)
    stats = ingest([docs], Settings(qdrant_path=tmp_path / "q", captioner="none", workers=2), embedder=embedder)
    assert events == ["workers", "probe"] and stats.files_indexed == 1
