"""The service's shared path under stress: concurrent searches, status and document reads while an ingest job
writes through the same store. Every call on the Edge engine and on the query model must come from its one
owning thread; a wrapper around the real objects records the thread of each call."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from caprl_index.config import Settings
from caprl_index.embedding.query import open_query_encoder
from caprl_index.search import SearchFilters
from caprl_index.service.core import SearchRequest, Service
from caprl_index.service.threads import READS_PER_WRITE, QueryEncoder, StoreThread
from caprl_index.store import QdrantStore
from caprl_index.store.edge import EdgeEngine
from caprl_index.testing.service import build_demo_index
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow


class OneThread:
    """Forwards every attribute of `target`; records the threads its methods are called from."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.threads: set[int] = set()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def called(*args: Any, **kwargs: Any) -> Any:
            self.threads.add(threading.get_ident())
            self.calls += 1
            return value(*args, **kwargs)

        return called


def test_searches_status_and_documents_while_a_job_writes(tmp_path: Path) -> None:
    settings = Settings(qdrant_path=tmp_path / "index" / "qdrant", captioner="none", workers=1)
    demo = build_demo_index(settings, tmp_path / "demo")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("solar-market-report-2024.pdf", "city-transit-infographic.pdf"):
        shutil.copy(EXAMPLES / name, docs / name)
    engine = OneThread(EdgeEngine(settings.qdrant_path, settings.collection))
    service = Service(settings, roots=[tmp_path], store=QdrantStore(settings, engine=engine))  # type: ignore[arg-type]
    service.start()
    assert service.encoder is not None
    models = [OneThread(e) for e in service.encoder.embedders]
    service.encoder.embedders[:] = models  # type: ignore[assignment]
    sha = demo.file_sha["energy-report.pdf"]
    errors: list[BaseException] = []
    counts = {"search": 0, "status": 0, "document": 0}
    stop = threading.Event()

    async def reader(n: int) -> None:
        i = 0
        while not stop.is_set():
            hits = await service.search(SearchRequest(f"solar capacity {n} {i}", k=5, filters=SearchFilters()))
            assert hits, "the demo pages are always found"
            counts["search"] += 1
            if i % 5 == 0:
                assert (await service.status())["files"] >= 3
                assert (await service.document(sha)) is not None
                counts["status"] += 1
                counts["document"] += 1
            i += 1

    def run(n: int) -> None:
        try:
            asyncio.run(reader(n))
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    readers = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    try:
        job = service.submit_ingest([str(docs)], {"force": True})
        for t in readers:
            t.start()
        assert job.done.wait(600), "the job ended"
        stop.set()
        for t in readers:
            t.join(timeout=60)
        assert not errors, repr(errors[0])
        assert job.state == "done" and job.summary and job.summary["files_indexed"] == 2, job.as_json()
        assert counts["search"] >= 20 and counts["status"] >= 4
        assert engine.threads == {service.store_thread.thread_id}, "the Edge store was used from another thread"
        assert all(len(m.threads) == 1 for m in models), "a query model was used from more than one thread"
        assert len(set().union(*(m.threads for m in models))) == len(models), "each model has a thread of its own"
        assert engine.calls > 100
        later = asyncio.run(service.search(SearchRequest("battery storage prices by year", k=3)))
        assert later[0]["file_name"] == "solar-market-report-2024.pdf"
    finally:
        stop.set()
        service.close()


def hold(thread: StoreThread) -> threading.Event:
    """Keep the store thread busy until the returned event is set (so that its queue can fill)."""
    started, gate = threading.Event(), threading.Event()

    def busy() -> None:
        started.set()
        gate.wait()

    thread.submit(busy)
    started.wait(10)
    return gate


def test_reads_go_first_but_a_write_is_never_starved() -> None:
    thread = StoreThread()
    order: list[str] = []
    try:
        gate = hold(thread)
        writes = [thread.submit(order.append, f"w{i}") for i in range(2)]
        reads = [thread.read(order.append, f"r{i}") for i in range(2 * READS_PER_WRITE + 2)]
        gate.set()
        for f in writes + reads:
            f.result(timeout=10)
        r = [f"r{i}" for i in range(2 * READS_PER_WRITE + 2)]
        per = READS_PER_WRITE
        assert order == [*r[:per], "w0", *r[per : 2 * per], "w1", *r[2 * per :]]
    finally:
        thread.shutdown()


def test_close_runs_queued_reads_then_the_final_call_last() -> None:
    thread = StoreThread()
    order: list[str] = []
    gate = hold(thread)
    thread.submit(order.append, "write")
    thread.read(order.append, "read")
    closing = threading.Thread(target=thread.shutdown, kwargs={"final": lambda: order.append("close")})
    closing.start()
    time.sleep(0.1)
    gate.set()
    closing.join(timeout=10)
    assert order == ["read", "write", "close"]
    with pytest.raises(Exception, match="shutting down"):
        thread.read(order.append, "too late")


def test_query_encoders_share_the_work_and_give_the_same_vectors() -> None:
    """Two threads, each with its own model: both get work, and a vector is the CLI's to the last bit."""
    settings = Settings()
    first, second = open_query_encoder(settings), open_query_encoder(settings)
    assert first is not None and second is not None
    wrapped = [OneThread(first), OneThread(second)]
    encoder = QueryEncoder(wrapped)  # type: ignore[arg-type]
    try:
        texts = [f"solar capacity {i}" for i in range(40)]
        vectors = [f.result(timeout=60) for f in [encoder.submit(t) for t in texts]]
        assert all(w.calls for w in wrapped) and all(len(w.threads) == 1 for w in wrapped)
        assert wrapped[0].threads != wrapped[1].threads
        reference = open_query_encoder(settings)
        assert reference is not None
        one_by_one = np.asarray([reference.embed([t])[0] for t in texts])
        assert np.abs(one_by_one - np.asarray(vectors)).max() < 1e-6  # batched: equal up to float32 rounding
        assert encoder.submit("a query alone").result(timeout=30) == reference.embed(["a query alone"])[0]
    finally:
        encoder.close()


def test_query_encoder_batches_and_caches() -> None:
    calls: list[list[str]] = []
    real = open_query_encoder(Settings())
    assert real is not None

    class Counting:
        name = real.name

        def embed(self, texts: list[str]) -> list[list[float]]:
            calls.append(list(texts))
            time.sleep(0.05)  # slow enough that the next queries queue up
            return real.embed(texts)

    encoder = QueryEncoder([Counting()])  # type: ignore[list-item]
    try:
        futures = [encoder.submit(f"query {i % 6}") for i in range(12)]
        vectors = [f.result(timeout=30) for f in futures]
        assert vectors[0] == vectors[6] and vectors[0] != vectors[1]
        assert sum(len(c) for c in calls) == 6, "each distinct query is embedded once"
        assert len(calls) < 6, "queries that waited were embedded together"
        assert np.abs(np.asarray(vectors[1]) - real.embed(["query 1"])[0]).max() < 1e-6
        n = len(calls)
        assert encoder.submit("query 3").result(timeout=5) == vectors[3] and len(calls) == n  # from the cache
    finally:
        encoder.close()


def test_batched_query_vectors_equal_one_by_one() -> None:
    """The NumPy encoder embeds several texts together (their tokens stacked, attention per text)."""
    encoder = open_query_encoder(Settings())
    assert encoder is not None
    texts = ["solar capacity by year", "a", "revenue by region 2023 and what else the annual report says", "x " * 300]
    together = np.asarray(encoder.embed(texts))
    alone = np.asarray([encoder.embed([t])[0] for t in texts])
    assert together.shape == (4, 384) and np.abs(together - alone).max() < 1e-6
    assert encoder.embed([]) == []


def test_the_job_thread_runs_below_the_server() -> None:
    """Its niceness is added to the server's, so a server started under `nice` still favours searches."""
    import os

    from caprl_index.service.jobs import Job, JobRunner

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: dict[str, int] = {}

    def server() -> None:  # a "server" thread already niced by 2; the job thread it starts inherits that
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, priority() + 2))
        seen["server"] = priority()
        runner = JobRunner(lambda job: seen.setdefault("job", priority()), nice=3)
        try:
            assert runner.submit(Job(kind="delete", paths=[])).done.wait(10)
        finally:
            runner.close()

    thread = threading.Thread(target=server)
    thread.start()
    thread.join(30)
    assert seen["job"] == min(19, seen["server"] + 3) and seen["server"] >= 2
