"""Both store engines on one contract: Qdrant Edge in a temporary folder, and the server engine on
qdrant-client's in-process API (no Qdrant server runs here). Then what only Edge has (a folder, a lock, a
WAL), and moving an index between engines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from caprl_index.errors import StoreError
from caprl_index.store.edge import EdgeEngine
from caprl_index.store.engine import Engine, NewPoint, PointFilter
from caprl_index.store.server import ServerEngine
from caprl_index.store.sparse import document_vector, query_vector
from caprl_index.testing.store_points import file_path, synthetic_points, synthetic_queries

DIM = 16
N = 120  # points 0-119 of files 0 (ids 0-199 would be one file): 3 kinds, pages 1-15
RARE = "zyxomorph"  # a word only the points in RARE_POINTS carry
RARE_POINTS = (5, 40, 77)
ROOT = Path(__file__).resolve().parents[1]


def _with_text(p: NewPoint, text: str) -> NewPoint:
    return NewPoint(p.id, p.dense, document_vector(text), {**p.payload, "text": text})


def dataset() -> list[NewPoint]:
    """Synthetic points with the real payload shape, two of them from a second file, a few with a rare word."""
    pts = synthetic_points(0, N, dim=DIM)
    for i in RARE_POINTS:
        pts[i] = _with_text(pts[i], pts[i].payload["text"] + f" {RARE} {RARE}")
    pts[7] = _with_text(pts[7], "Umsatz nach Region — 売上 📈 naïve café")  # unicode, BM25 tokens included
    for i in (100, 101):
        pts[i] = NewPoint(pts[i].id, pts[i].dense, pts[i].sparse, {**pts[i].payload, "file_path": file_path(9)})
    return pts


def open_engine(kind: str, tmp_path: Path, collection: str = "caprl") -> Engine:
    if kind == "edge":
        return EdgeEngine(tmp_path / "qdrant", collection)
    return ServerEngine(QdrantClient(location=":memory:"), collection)


@pytest.fixture(params=["edge", "server"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(request.param, tmp_path)
    yield e
    e.close()


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    engine.create(DIM)
    engine.upsert(dataset())
    return engine


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine]]:
    """Both engines holding the same data, for parity."""
    edge, server = EdgeEngine(tmp_path_factory.mktemp("parity"), "caprl"), open_engine("server", Path())
    for e in (edge, server):
        e.create(DIM)
        e.upsert(dataset())
    yield edge, server
    edge.close()
    server.close()


# --- the contract, on both engines ------------------------------------------------------------
def test_create_exists_and_dense_size(engine: Engine) -> None:
    assert not engine.exists() and engine.dense_size() is None and engine.count() == 0
    assert engine.query([1.0] * DIM, None, limit=3, flt=None, depth=10, rrf_k=61) == []
    engine.create(DIM)
    engine.create(DIM)  # idempotent
    assert engine.exists() and engine.dense_size() == DIM
    with pytest.raises(StoreError, match=f"{DIM}-d vectors.*new --collection"):
        engine.create(DIM * 2)


def test_upsert_retrieve_with_vectors_and_payload_roundtrip(loaded: Engine) -> None:
    want = {p.id: p for p in dataset()}
    got = loaded.retrieve([*want, "00000000-0000-0000-0000-000000000000"], with_vectors=True)
    assert {p.id for p in got} == set(want)
    for p in got:
        assert p.payload == want[p.id].payload  # null bbox, the `_node_content` JSON string, unicode
        assert p.dense == pytest.approx(want[p.id].dense, abs=1e-6)  # unit vectors: cosine keeps them
        assert p.sparse is not None and p.sparse[0] == want[p.id].sparse[0]
        assert p.sparse[1] == pytest.approx(want[p.id].sparse[1], rel=1e-6)
    text = next(p for p in got if p.payload["kind"] == "text")
    assert text.payload["bbox"] is None and json.loads(text.payload["_node_content"])["text"] == text.payload["text"]
    assert loaded.retrieve([next(iter(want))])[0].dense is None  # no vectors unless asked


def test_count_with_filters(loaded: Engine) -> None:
    pts = dataset()
    by = lambda f: sum(1 for p in pts if f(p.payload))  # noqa: E731
    assert loaded.count() == N
    assert loaded.count(PointFilter(kinds=("figure", "page"))) == by(lambda q: q["kind"] != "text")
    assert loaded.count(PointFilter(page_from=3, page_to=4)) == by(lambda q: 3 <= q["page"] <= 4)
    assert loaded.count(PointFilter(page_from=14)) == by(lambda q: q["page"] >= 14)
    assert loaded.count(PointFilter(file_paths=(file_path(9),))) == 2
    assert loaded.count(PointFilter(figure_types=("chart",), file_sha256=pts[0].payload["file_sha256"])) > 0
    assert loaded.count(PointFilter(doc_ids=(pts[0].payload["doc_id"],))) == N
    assert loaded.count(PointFilter(ids=(pts[0].id, pts[1].id), exclude_ids=(pts[1].id,))) == 1
    assert loaded.count(PointFilter(ids=())) == 0


def test_delete_by_filter(loaded: Engine) -> None:
    pts = dataset()
    keep = tuple(p.id for p in pts[:10])
    with pytest.raises(StoreError, match="empty filter"):
        loaded.delete(PointFilter())
    # What ingest does with a new file version: drop the file's points that are not among the new ones.
    loaded.delete(PointFilter(file_paths=(file_path(0),), exclude_ids=keep))
    assert loaded.count() == 10 + 2
    loaded.delete(PointFilter(file_paths=(file_path(9),), file_sha256="not-this-version"))
    assert loaded.count() == 12
    loaded.delete(PointFilter(file_paths=(file_path(9),), file_sha256=pts[100].payload["file_sha256"]))
    assert {p.id for p in loaded.scroll(limit=100)[0]} == set(keep)


def test_scroll_pages_through_everything_in_id_order(loaded: Engine) -> None:
    seen, offset, pages = [], None, 0
    while True:
        page, offset = loaded.scroll(limit=7, offset=offset, with_vectors=pages == 0)
        seen += [p.id for p in page]
        assert (page[0].dense is not None) == (pages == 0)
        pages += 1
        if offset is None:
            break
    assert pages == -(-N // 7) and len(seen) == len(set(seen)) == N
    figures, _ = loaded.scroll(PointFilter(kinds=("figure",)), limit=1000)
    assert figures and all(p.payload["kind"] == "figure" for p in figures)


def test_records_crud(engine: Engine) -> None:
    assert engine.records() == {} and engine.get_record("/a.pdf") is None
    engine.create(DIM)
    engine.put_records([{"file_path": "/a.pdf", "complete": True, "pages": 3}, {"file_path": "/b é.pdf", "n": None}])
    engine.put_records([{"file_path": "/a.pdf", "complete": False}])  # replaces, by path
    assert engine.get_record("/a.pdf") == {"file_path": "/a.pdf", "complete": False}
    assert set(engine.records()) == {"/a.pdf", "/b é.pdf"}
    engine.delete_record("/a.pdf")
    engine.delete_record("/never.pdf")
    assert list(engine.records()) == ["/b é.pdf"] and engine.count() == 0  # records are not points


def test_dense_hybrid_and_filtered_queries(loaded: Engine) -> None:
    q = dataset()[33]
    dense = loaded.query(q.dense, None, limit=5, flt=None, depth=40, rrf_k=61)
    assert dense[0].id == q.id and dense[0].score == pytest.approx(1.0, abs=1e-5)
    rare = {dataset()[i].id for i in RARE_POINTS}
    alone = {p.id for p in loaded.query(q.dense, None, limit=10, flt=None, depth=N, rrf_k=61)}
    hybrid = loaded.query(q.dense, query_vector(RARE), limit=10, flt=None, depth=N, rrf_k=61)
    assert not rare <= alone and rare <= {p.id for p in hybrid}  # BM25 lifts the only matches into the top 10
    assert q.id in {p.id for p in hybrid} and all(p.payload["text"] for p in hybrid)
    flt = PointFilter(kinds=("text",), page_from=2)  # rare points 40 and 77 pass, 5 (page 1) does not
    fused = loaded.query(q.dense, query_vector(RARE), limit=50, flt=flt, depth=50, rrf_k=2)
    for hits in (fused, *loaded.query_each(q.dense, query_vector(RARE), limit=50, flt=flt)):
        assert hits and all(p.payload["kind"] == "text" and p.payload["page"] >= 2 for p in hits)
    assert len(loaded.query_each(q.dense, query_vector(RARE), limit=50, flt=flt)[1]) == 2
    assert len(loaded.query_each(q.dense, ([], []), limit=5, flt=None)) == 1  # no terms: dense only


def _ranking(points: list) -> list[tuple[str, float]]:
    return [(p.id, p.score) for p in points]


def _same(a: list, b: list) -> None:
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("depth", [10, N])
def test_parity_same_data_same_ranking(pair: tuple[Engine, Engine], depth: int) -> None:
    """Dense, BM25 (IDF over the collection) and RRF give the same points in the same order on both."""
    edge, server = pair
    queries = [(q.dense, q.sparse) for q in synthetic_queries(6, N, dim=DIM)]
    queries.append((dataset()[60].dense, query_vector(f"{RARE} region")))  # sparse hits the dense ranks last
    for dense, sparse in queries:
        each = edge.query_each(dense, sparse, limit=depth, flt=None)
        assert len(each) == 2
        for e, s in zip(each, server.query_each(dense, sparse, limit=depth, flt=None), strict=True):
            _same(_ranking(e), _ranking(s))
        for k in (2, 61):
            args = {"limit": 10, "flt": None, "depth": depth, "rrf_k": k}
            _same(_ranking(edge.query(dense, sparse, **args)), _ranking(server.query(dense, sparse, **args)))
    flt = PointFilter(kinds=("text",), page_to=9)
    args = {"limit": 10, "flt": flt, "depth": depth, "rrf_k": 2}
    _same(_ranking(edge.query(*queries[-1], **args)), _ranking(server.query(*queries[-1], **args)))
    assert [p.id for p in edge.scroll(limit=N)[0]] == [p.id for p in server.scroll(limit=N)[0]]


def test_rrf_scores_and_ties_follow_qdrant(pair: tuple[Engine, Engine]) -> None:
    edge, _ = pair
    dense, sparse = dataset()[60].dense, query_vector(RARE)
    hits = edge.query(dense, sparse, limit=N, flt=None, depth=N, rrf_k=2)
    each = edge.query_each(dense, sparse, limit=N, flt=None)
    rank = [{p.id: r for r, p in enumerate(ranked)} for ranked in each]
    for p in hits:  # ranks from 0: 1 / (k + rank), summed
        assert p.score == pytest.approx(sum(1 / (2 + r[p.id]) for r in rank if p.id in r), rel=1e-5)
    ties = [(p.score, p.id) for p in hits]
    assert ties == sorted(ties, key=lambda t: (-t[0], t[1]))  # equal scores come in id order


# --- Edge only: the folder ----------------------------------------------------------------
def _child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)


WRITER = """
import sys, time
from pathlib import Path
from caprl_index.store.edge import EdgeEngine
from caprl_index.store.engine import PointFilter
from caprl_index.testing.store_points import synthetic_points, file_path
e = EdgeEngine(Path(sys.argv[1]), "caprl")
e.create(16)
for start in range(0, 600, 200):
    e.upsert(synthetic_points(start, 200, dim=16))
e.delete(PointFilter(file_paths=(file_path(1),)))
e.put_records([{"file_path": file_path(0), "complete": True}])
e.upsert(synthetic_points(600, 5, dim=16))  # after the last flush: only the WAL has these
print("done", flush=True)
time.sleep(120)
"""


def test_sigkill_after_a_write_returns_loses_nothing(tmp_path: Path) -> None:
    child = _child(WRITER, str(tmp_path))
    assert child.stdout is not None and child.stdout.readline().strip() == "done"
    child.send_signal(signal.SIGKILL)
    child.wait()
    e = EdgeEngine(tmp_path, "caprl")  # the kernel dropped the dead writer's lock
    try:
        assert e.count() == 605 - 200 and e.count(PointFilter(file_paths=(file_path(1),))) == 0
        want = synthetic_points(600, 5, dim=16)
        assert [p.payload for p in e.retrieve([p.id for p in want])] == [p.payload for p in want]
        assert e.get_record(file_path(0)) == {"file_path": file_path(0), "complete": True}
    finally:
        e.close()


def test_second_process_gets_an_in_use_message(tmp_path: Path) -> None:
    EdgeEngine(tmp_path, "caprl").close()
    holder = _child("import sys, time; from pathlib import Path; from caprl_index.store.edge import EdgeEngine; "
                    "e = EdgeEngine(Path(sys.argv[1]), 'caprl'); print('open', flush=True); time.sleep(120)",
                    str(tmp_path))  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(
            StoreError, match=rf"{tmp_path} is in use by another caprl-index process \(pid {holder.pid}"
        ):
            EdgeEngine(tmp_path, "caprl")
    finally:
        holder.kill()
        holder.wait()
    EdgeEngine(tmp_path, "caprl").close()
    with EdgeEngineOpen(tmp_path), pytest.raises(StoreError, match="already open in this process"):
        EdgeEngine(tmp_path, "caprl")


class EdgeEngineOpen:
    def __init__(self, path: Path) -> None:
        self.engine = EdgeEngine(path, "caprl")

    def __enter__(self) -> EdgeEngine:
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.close()


def _files(folder: Path) -> set[Path]:
    # Edge folds its storage journals (tracker_journal.dat) into their trackers on every open, good or not.
    return {p for p in folder.rglob("*") if p.name not in ("caprl.lock", "tracker_journal.dat")}


@pytest.mark.parametrize("damage", ["garbage config", "truncated vectors", "config missing"])
def test_damaged_folder_is_named_and_left_alone(tmp_path: Path, damage: str) -> None:
    with EdgeEngineOpen(tmp_path) as e:
        e.create(DIM)
        e.upsert(dataset())
    shard = tmp_path / "edge" / "caprl"
    if damage == "garbage config":
        (shard / "edge_config.json").write_text("{not json")
    elif damage == "config missing":
        (shard / "edge_config.json").unlink()
    else:
        for f in shard.glob("segments/*/vector_storage-text-dense/**/*"):
            if f.is_file():
                os.truncate(f, 3)
    before = _files(tmp_path)
    with pytest.raises(StoreError, match=rf"{shard} is damaged .*Nothing was deleted.*caprl-index ingest"):
        EdgeEngine(tmp_path, "caprl")
    assert _files(tmp_path) == before
    EdgeEngine(tmp_path, "caprl-other").close()  # the failed open released its lock; other collections open


def test_reopen_after_close_and_optimize(tmp_path: Path) -> None:
    with EdgeEngineOpen(tmp_path) as e:
        e.create(DIM)
        e.upsert(dataset())
        e.put_records([{"file_path": file_path(0), "complete": True}])
        e.optimize()
        e.optimize()  # nothing left to do
        hits = e.query(dataset()[3].dense, query_vector(RARE), limit=5, flt=None, depth=20, rrf_k=61)
    e.close()  # twice is fine
    with EdgeEngineOpen(tmp_path) as again:
        assert again.count() == N and again.dense_size() == DIM and list(again.records()) == [file_path(0)]
        assert again.query(dataset()[3].dense, query_vector(RARE), limit=5, flt=None, depth=20, rrf_k=61) == hits
        assert again.count(PointFilter(page_from=2, page_to=2, kinds=("text",))) > 0  # indexes added by optimize


def test_a_large_upsert_is_written_in_wal_sized_batches(tmp_path: Path) -> None:
    with EdgeEngineOpen(tmp_path) as e:
        e.create(DIM)
        e.upsert(synthetic_points(0, 2500, dim=DIM))  # three WAL records, not one of ~15 MB
        assert e.count() == 2500
