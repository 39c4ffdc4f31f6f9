"""Moving an index: Edge <-> server copies (resumable), the previous release's folder migrated to Edge, and
the server engine's retry policy against a real loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from caprl_index.errors import StoreError
from caprl_index.store.edge import EdgeEngine
from caprl_index.store.engine import Engine, NewPoint
from caprl_index.store.server import ServerEngine, connect, is_transient
from caprl_index.store.transfer import copy_index, is_legacy_local, legacy_error, migrate_legacy
from caprl_index.testing.store_points import file_path, synthetic_points
from tests.conftest import free_port

DIM = 16
N = 230
RECORDS = [{"file_path": file_path(f), "complete": True, "file_sha256": f"{f:064x}"} for f in range(2)]


def filled(e: Engine, points: list[NewPoint] | None = None) -> Engine:
    e.create(DIM)
    e.upsert(points or synthetic_points(0, N, dim=DIM))
    e.put_records(RECORDS)
    return e


def everything(e: Engine) -> tuple[dict[str, tuple], dict[str, dict]]:
    """Every point (payload, dense, sparse) by id, and every record."""
    out, offset = {}, None
    while True:
        page, offset = e.scroll(limit=100, offset=offset, with_vectors=True)
        out.update((p.id, (p.payload, p.dense, p.sparse)) for p in page)
        if offset is None:
            return out, e.records()


def assert_same(a: Engine, b: Engine) -> None:
    """Same ids, payloads and records; vectors equal up to float32 (Edge keeps sparse weights as f32)."""
    (pa, ra), (pb, rb) = everything(a), everything(b)
    assert set(pa) == set(pb) and ra == rb
    for pid, (payload, dense, sparse) in pa.items():
        assert pb[pid][0] == payload
        assert pb[pid][1] == pytest.approx(dense, rel=1e-6, abs=1e-7)
        assert pb[pid][2][0] == sparse[0] and pb[pid][2][1] == pytest.approx(sparse[1], rel=1e-6)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeEngine]:
    e = EdgeEngine(tmp_path / "qdrant", "caprl")
    yield e
    e.close()


@pytest.fixture
def server() -> Iterator[ServerEngine]:
    e = ServerEngine(QdrantClient(location=":memory:"), "caprl")
    yield e
    e.close()


@pytest.mark.parametrize("direction", ["edge->server", "server->edge"])
def test_copy_is_equal_both_ways(edge: EdgeEngine, server: ServerEngine, direction: str) -> None:
    src, dst = (edge, server) if direction == "edge->server" else (server, edge)
    filled(src)
    seen: list[int] = []
    result = copy_index(src, dst, batch=64, on_progress=seen.append)
    assert (result.points, result.records, result.skipped) == (N, 2, 0) and seen == [64, 128, 192, N]
    assert dst.dense_size() == DIM
    assert_same(src, dst)


class Interrupted(Exception):
    pass


def test_interrupted_copy_resumes_without_duplicates_or_loss(edge: EdgeEngine, server: ServerEngine, tmp_path: Path):
    filled(edge)
    state = tmp_path / "push-state.json"

    def stop_after_two(done: int) -> None:
        if done >= 100:
            raise Interrupted

    with pytest.raises(Interrupted):
        copy_index(edge, server, batch=50, on_progress=stop_after_two, state_file=state)
    assert server.count() == 100 and server.records() == {}  # records come last: no file is claimed yet
    assert json.loads(state.read_text())["done"] == 100
    seen: list[int] = []
    result = copy_index(edge, server, batch=50, on_progress=seen.append, state_file=state)
    assert (result.skipped, result.points, result.records) == (100, N - 100, 2) and seen[0] == 150
    assert server.count() == N and not state.exists()
    assert_same(edge, server)


def test_a_state_file_of_another_copy_is_ignored(edge: EdgeEngine, server: ServerEngine, tmp_path: Path) -> None:
    filled(edge)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"src": ["elsewhere", "x"], "phase": "records", "offset": None, "done": 5}))
    assert copy_index(edge, server, state_file=state).points == N and server.count() == N


def test_copy_refuses_a_destination_of_another_size(edge: EdgeEngine, server: ServerEngine) -> None:
    filled(edge)
    server.create(DIM + 1)
    with pytest.raises(StoreError, match="new --collection"):
        copy_index(edge, server)
    with pytest.raises(StoreError, match="no collection 'other'"):
        copy_index(ServerEngine(QdrantClient(location=":memory:"), "other"), edge)


# --- the previous release's folder ------------------------------------------------------------
def legacy_folder(path: Path) -> list[NewPoint]:
    """An index written by today's `QdrantStore` in qdrant-client local mode, as users have them."""
    points = synthetic_points(0, 60, dim=DIM)
    client = QdrantClient(path=str(path))  # the previous release's embedded store: this layout, in local mode
    try:
        for name in ("caprl", "second"):
            old = ServerEngine(client, name)
            old.create(DIM)
            old.upsert(points)
            old.put_records(RECORDS)
    finally:
        client.close()
    return points


def test_legacy_folder_migrates_with_its_vectors_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    points = legacy_folder(path)
    assert is_legacy_local(path) and "caprl-index migrate" in str(legacy_error(path))
    with pytest.raises(StoreError, match=r"earlier caprl-index .*Run `caprl-index migrate`"):
        EdgeEngine(path, "caprl")  # recognised: nothing is written into the old folder
    assert not (path / "edge").exists()
    result = migrate_legacy(path, "caprl")
    assert result.collections == ("caprl", "second") and (result.points, result.records) == (120, 4)
    assert result.old_folder == tmp_path / "qdrant.pre-edge" and is_legacy_local(result.old_folder)
    assert not is_legacy_local(path) and not (tmp_path / "qdrant.edge-migrating").exists()
    client = QdrantClient(path=str(result.old_folder))  # the old folder still reads as before
    for name in ("caprl", "second"):
        new, old = EdgeEngine(path, name), ServerEngine(client, name)
        try:
            assert new.count() == len(points) and new.dense_size() == DIM
            assert_same(old, new)
        finally:
            new.close()
    client.close()
    with pytest.raises(StoreError, match="nothing to migrate"):
        migrate_legacy(path, "caprl")


def test_migration_names_a_missing_collection_and_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    legacy_folder(path)
    with pytest.raises(StoreError, match=r"no caprl-index collection 'nope' \(it has: caprl, second\)"):
        migrate_legacy(path, "nope")
    assert is_legacy_local(path) and not (tmp_path / "qdrant.edge-migrating").exists()


def test_migration_stopped_between_its_renames_finishes(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    legacy_folder(path)
    staging = tmp_path / "qdrant.edge-migrating"
    # Everything copied and marked, the old folder already renamed: what a crash at the last step leaves.
    migrate_legacy(path, "caprl")
    path.rename(staging)
    mark = {"collections": ["caprl", "second"], "points": 120, "records": 4}
    (staging / "MIGRATED.json").write_text(json.dumps(mark))
    result = migrate_legacy(path, "caprl")
    assert result.old_folder == tmp_path / "qdrant.pre-edge" and not staging.exists()
    new = EdgeEngine(path, "caprl")
    assert new.count() == 60
    new.close()


# --- the server engine's retries --------------------------------------------------------------
class StatusServer(ThreadingHTTPServer):
    """Answers every request with one status and Qdrant's error body, counting the requests."""

    def __init__(self, status: int) -> None:
        self.status, self.requests = status, 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer

    def _answer(self) -> None:
        self.server.requests += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"status": {"error": f"status {self.server.status}"}, "time": 0}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def status_server(request: pytest.FixtureRequest) -> Iterator[StatusServer]:
    srv = StatusServer(request.param)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    ("status_server", "attempts"), [(503, 3), (500, 3), (400, 1), (404, 1)], indirect=["status_server"]
)
def test_only_transient_server_errors_are_retried(status_server: StatusServer, attempts: int) -> None:
    url = f"http://127.0.0.1:{status_server.server_port}"
    engine = ServerEngine(QdrantClient(url=url, check_compatibility=False), "caprl", retry_delays=(0.01, 0.01))
    with pytest.raises(StoreError, match=f"Qdrant \\({url}\\) failed"):
        engine.count()
    assert status_server.requests == attempts


def test_transient_means_transport_or_5xx() -> None:
    headers = httpx.Headers()
    assert is_transient(ResponseHandlingException(httpx.ConnectError("refused")))
    assert is_transient(httpx.ReadTimeout("slow"))
    assert is_transient(UnexpectedResponse(503, "Service Unavailable", b"", headers))
    assert not is_transient(UnexpectedResponse(400, "Bad Request", b"", headers))
    assert not is_transient(ResponseHandlingException(ValueError("bad json")))
    assert not is_transient(ValueError("wrong vector size"))


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot reach Qdrant at .*docker compose up qdrant"):
        connect(f"http://127.0.0.1:{free_port()}", timeout=2)


def test_local_path_mode_makes_no_payload_indexes(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    e = ServerEngine(QdrantClient(path=str(tmp_path / "local")), "caprl")
    filled(e, synthetic_points(0, 10, dim=DIM))
    assert e.count() == 10 and not [w for w in recwarn if "index" in str(w.message).lower()]
    e.close()
