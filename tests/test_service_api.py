"""`caprl-index serve` against a live server process on 127.0.0.1: search equals `search --json`, the CLI goes
through the running server, evidence images, files, documents, status, auth, limits, and error shapes."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from caprl_index.cli import main
from caprl_index.config import Settings
from caprl_index.evidence.show import BOX_COLOUR
from caprl_index.search import Hit
from caprl_index.service.schemas import HitOut
from caprl_index.testing.service import PAGE_H, PAGE_W, RENDER_SCALE, DemoIndex, ServeProcess, build_demo_index

pytestmark = pytest.mark.slow

# The CLI's search options and the same search as /v1/search parameters.
SEARCHES: list[tuple[list[str], dict[str, Any]]] = [
    (["solar capacity by year"], {}),
    (["solar capacity by year", "--kind", "figure"], {"kind": "figure"}),
    (["adults", "--file", "health*"], {"file": "health*"}),
    (["energy", "--pages", "2-3"], {"pages": "2-3"}),
    (["energy report solar", "--group-by", "page"], {"group_by": "page"}),
    (["battery prices", "--dense-only", "-k", "3"], {"dense_only": "true", "k": 3}),
    (["mobile banking roadmap", "--kind", "page", "-k", "1"], {"kind": "page", "k": 1}),
]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemoIndex]:
    root = tmp_path_factory.mktemp("serve-api")
    settings = Settings(qdrant_path=root / "index" / "qdrant")
    return settings, build_demo_index(settings, root / "docs")


@pytest.fixture(scope="module")
def local_answers(demo: tuple[Settings, DemoIndex]) -> dict[str, Any]:
    """What the CLI prints on its own, before any server holds the index."""
    settings, _ = demo
    path = str(settings.qdrant_path)
    answers: dict[str, Any] = {}
    for argv, _ in SEARCHES:
        rc, out, err = run_cli("search", *argv, "--json", "--qdrant-path", path)
        assert rc == 0, err
        answers[" ".join(argv)] = json.loads(out)
    rc, out, err = run_cli("status", "--json", "--qdrant-path", path)
    assert rc == 0, err
    answers["status"] = json.loads(out)
    return answers


@pytest.fixture(scope="module")
def server(demo: tuple[Settings, DemoIndex], local_answers: dict[str, Any]) -> Iterator[ServeProcess]:
    settings, index = demo
    env = {"CAPRL_QDRANT_PATH": str(settings.qdrant_path), "CAPRL_INGEST_ROOTS": str(index.folder)}
    with ServeProcess(env) as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        yield client


@pytest.mark.parametrize(("argv", "params"), SEARCHES, ids=[" ".join(a) for a, _ in SEARCHES])
def test_search_equals_the_cli_json(
    http: httpx.Client, local_answers: dict[str, Any], argv: list[str], params: dict[str, Any]
) -> None:
    response = http.get("/v1/search", params={"q": argv[0], **params})
    assert response.status_code == 200, response.text
    assert response.json() == local_answers[" ".join(argv)]
    assert response.json(), "every search here has hits"


def test_cli_commands_go_through_the_running_server(
    server: ServeProcess, demo: tuple[Settings, DemoIndex], local_answers: dict[str, Any]
) -> None:
    """The folder is held by serve: opening it would fail with "in use"; the CLI asks the server instead."""
    path = str(demo[0].qdrant_path)
    for argv, _ in SEARCHES[:3]:
        rc, out, err = run_cli("search", *argv, "--json", "--qdrant-path", path)
        assert rc == 0, err
        assert json.loads(out) == local_answers[" ".join(argv)]
    rc, out, err = run_cli("search", "solar capacity", "--qdrant-path", path)
    assert rc == 0 and "energy-report.pdf" in out, err
    rc, out, err = run_cli("status", "--json", "--qdrant-path", path)
    assert rc == 0, err
    assert json.loads(out) == local_answers["status"]
    rc, out, err = run_cli("status", "--json", "--server", server.url, "--qdrant-path", "/nonexistent/qdrant")
    assert rc == 0 and json.loads(out) == local_answers["status"], err


def test_server_url_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    rc, _, err = run_cli("search", "x", "--server", "http://127.0.0.1:9", "--qdrant-path", str(tmp_path))
    assert rc == 2
    assert err.count("\n") == 1 and "cannot reach caprl-index serve at http://127.0.0.1:9" in err
    assert "Traceback" not in err


def test_points_images_and_pages(http: httpx.Client, demo: tuple[Settings, DemoIndex]) -> None:
    settings, index = demo
    figure_id = index.point_ids[("energy-report.pdf", 2, "figure")]
    point = http.get(f"/v1/points/{figure_id}").json()
    payload = point["payload"]
    assert point["id"] == figure_id and payload["kind"] == "figure" and payload["bbox"] == [60.0, 380.0, 420.0, 640.0]
    crop = http.get(f"/v1/images/{payload['image_sha256']}")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/png"
    image_root = settings.qdrant_path.parent / "images"
    assert crop.content == (image_root / payload["image_uri"]).read_bytes()
    sha = index.file_sha["energy-report.pdf"]
    thumb = http.get(f"/v1/pages/{sha}/2", params={"thumb": "true"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    drawn = http.get(f"/v1/pages/{sha}/2", params={"box": "60,380,420,640"})
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    from PIL import Image

    image = Image.open(io.BytesIO(drawn.content)).convert("RGB")
    assert image.size == (round(PAGE_W * RENDER_SCALE), round(PAGE_H * RENDER_SCALE))
    assert image.getpixel((round(60 * RENDER_SCALE) - 2, 500)) == BOX_COLOUR  # the outline, just outside the box
    assert image.getpixel((30, 30)) != BOX_COLOUR


def test_files_documents_and_status(http: httpx.Client, demo: tuple[Settings, DemoIndex]) -> None:
    _, index = demo
    files = http.get("/v1/files").json()
    assert sorted(f["file_name"] for f in files) == ["energy-report.pdf", "health-survey.pdf", "roadmap-deck.pptx"]
    assert all(f["complete"] and not f["failed"] for f in files)
    doc = http.get(f"/v1/documents/{index.file_sha['energy-report.pdf']}").json()
    assert [p["page"] for p in doc["pages"]] == [1, 2, 3]
    assert all(p["image"] and p["page_width"] == PAGE_W for p in doc["pages"])
    assert [(f["page"], f["kind"], f["bbox"]) for f in doc["figures"]] == [(2, "figure", [60.0, 380.0, 420.0, 640.0])]
    status = http.get("/v1/status").json()
    assert status["files"] == 3 and status["points"] == 7


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "says"),
    [
        ("GET", "/v1/search", {"params": {"q": "x", "k": 101}}, 422, "k: Input should be less than or equal to 100"),
        ("GET", "/v1/search", {"params": {"q": "x" * 1001}}, 422, "q: String should have at most 1000"),
        ("GET", "/v1/search", {"params": {"q": "  "}}, 422, "q is empty"),
        ("GET", "/v1/search", {"params": {"q": "x", "pages": "5-2"}}, 422, "did you mean 2-5"),
        ("GET", "/v1/search", {"params": {"q": "x", "kind": "video"}}, 422, "kind: Input should be"),
        ("GET", "/v1/points/not-a-uuid", {}, 422, "is not a point id"),
        ("GET", "/v1/points/00000000-0000-0000-0000-000000000000", {}, 404, "no point"),
        ("GET", "/v1/images/../../etc/passwd", {}, 404, "no such route"),
        ("GET", "/v1/images/" + "z" * 64, {}, 422, "64 lower-case hex"),
        ("GET", "/v1/images/" + "a" * 64, {}, 404, "no figure image"),
        ("GET", "/v1/pages/" + "a" * 64 + "/0", {}, 422, "page: Input should be greater than or equal to 1"),
        ("GET", "/v1/jobs/nope", {}, 404, "no job"),
        ("GET", "/v2/search", {}, 404, "the API is under /v1"),
        ("POST", "/v1/ingest", {"content": b'{"paths": ["/x"]}', "headers": {"content-type": "text/plain"}}, 415,
         "Content-Type: application/json"),
        ("POST", "/v1/ingest", {"json": {"paths": ["/" + "x" * 100] * 12_000}}, 413, "request body over"),
        ("POST", "/v1/ingest", {"json": {"paths": []}}, 422, "paths: List should have at least 1 item"),
        ("POST", "/v1/ingest", {"json": {"paths": ["/x"], "shell": "rm -rf"}}, 422, "shell: Extra inputs"),
        ("DELETE", "/v1/files", {"json": {"paths": ["relative/file.pdf"]}}, 400, "give absolute paths"),
        ("GET", "/v1/status", {"headers": {"host": "attacker.example:8080"}}, 421, "answers on 127.0.0.1 only"),
    ],
)  # fmt: skip
def test_refusals_are_one_json_line(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int, says: str
) -> None:
    response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert says in error and "\n" not in error and "Traceback" not in error


def test_ingest_is_restricted_to_the_roots(
    http: httpx.Client, demo: tuple[Settings, DemoIndex], tmp_path: Path
) -> None:
    _, index = demo
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(b"%PDF-1.4 secret")
    link = index.folder / "innocent.pdf"
    link.symlink_to(outside)
    try:
        cases = [
            ("/etc", 403, "outside the server's ingest roots"),
            (str(index.folder / ".." / ".." / "etc"), 403, "outside the server's ingest roots"),
            (str(link), 403, "outside the server's ingest roots"),
            (str(index.folder), 403, "innocent.pdf links to a file outside"),  # found by walking the folder
            ("docs/report.pdf", 400, "give absolute paths"),
            (str(index.folder / "missing.pdf"), 404, "no such file or folder"),
        ]
        for path, status, says in cases:
            response = http.post("/v1/ingest", json={"paths": [path]})
            assert response.status_code == status, (path, response.text)
            assert says in response.json()["error"], path
        assert http.get("/v1/jobs").json() == [], "a refused ingest starts no job"
    finally:
        link.unlink()


def test_security_headers_and_the_page(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and "<title>caprl-index</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert http.get("/static/app.js").status_code == 200


def test_openapi_documents_the_api(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path in ("/v1/search", "/v1/points/{point_id}", "/v1/images/{image_sha256}", "/v1/pages/{file_sha256}/{page}",
                 "/v1/files", "/v1/status", "/v1/ingest", "/v1/jobs/{job_id}", "/healthz", "/readyz"):  # fmt: skip
        assert path in schema["paths"], path
    assert set(HitOut.model_fields) == {f.name for f in fields(Hit)}  # the documented hit is the CLI's


def test_probes(http: httpx.Client, server: ServeProcess) -> None:
    health = http.get("/healthz").json()
    assert health["ok"] is True
    ready = http.get("/readyz")
    body = ready.json()
    assert ready.status_code == 200 and body["ready"] and body["store"]["open"] and body["embedding_model"]["loaded"]
    assert body["vllm"]["reachable"] is False and "OCR text" in body["vllm"]["detail"]


# --- an API key ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Settings]]:
    root = tmp_path_factory.mktemp("serve-key")
    settings = Settings(qdrant_path=root / "index" / "qdrant")
    build_demo_index(settings, root / "docs")
    env = {"CAPRL_QDRANT_PATH": str(settings.qdrant_path), "CAPRL_API_KEY": "s3cret-key"}
    with ServeProcess(env) as proc:
        yield proc, settings


def test_api_key_is_required_once_set(keyed: tuple[ServeProcess, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    proc, settings = keyed
    with httpx.Client(base_url=proc.url, timeout=30, trust_env=False) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret-ke"}):
            response = http.get("/v1/search", params={"q": "solar"}, headers=headers)
            assert response.status_code == 401 and "API key" in response.json()["error"]
        assert http.post("/v1/ingest", json={"paths": ["/etc"]}).status_code == 401
        assert http.get("/v1/images/" + "a" * 64).status_code == 401
        assert http.get("/healthz").status_code == 200  # probes stay open for orchestrators
        ok = http.get("/v1/search", params={"q": "solar"}, headers={"Authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200 and ok.json()
        assert http.get("/v1/status", headers={"X-API-Key": "s3cret-key"}).status_code == 200
    path = str(settings.qdrant_path)
    rc, _, err = run_cli("status", "--qdrant-path", path)
    assert rc == 2 and "API key" in err and err.count("\n") == 1
    monkeypatch.setenv("CAPRL_API_KEY", "s3cret-key")
    rc, out, err = run_cli("status", "--json", "--qdrant-path", path)
    assert rc == 0 and json.loads(out)["files"] == 3, err
    assert "s3cret-key" not in (settings.qdrant_path.parent / "serve" / "caprl.json").read_text()


def test_serve_beyond_loopback_needs_a_key(tmp_path: Path) -> None:
    rc, _, err = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--qdrant-path", str(tmp_path / "q"))
    assert rc == 2 and "CAPRL_API_KEY" in err and "never on the command line" in err
    assert not (tmp_path / "q").exists(), "refused before the index is opened"
    with pytest.raises(SystemExit):  # there is no flag for the key: secrets never on argv
        run_cli("serve", "--api-key", "x")


def test_a_second_serve_on_the_same_index_is_refused(server: ServeProcess, demo: tuple[Settings, DemoIndex]) -> None:
    env = {"CAPRL_QDRANT_PATH": str(demo[0].qdrant_path)}
    second = ServeProcess(env, start_timeout=60)
    with pytest.raises(RuntimeError, match="is in use by another caprl-index process") as info:
        second.start()
    assert "Traceback" not in str(info.value)
    assert os.path.exists(demo[0].qdrant_path.parent / "serve" / "caprl.json"), "the first server's file stays"


def test_accepted_connections_send_without_delay() -> None:
    """serve binds its own socket; asyncio turns Nagle off only on sockets that say TCP. Without it every
    response (headers and body written apart) waited for a delayed ACK: 44 ms for /healthz instead of 1.4."""
    import asyncio
    import socket

    from caprl_index.service.server import bind

    sock = bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            result.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        try:
            return await asyncio.wait_for(result, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0
