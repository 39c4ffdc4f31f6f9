"""Ingest jobs on a live `caprl-index serve`: progress and failures, searches answered while a job writes,
jobs that outlive their client, one writer at a time, and the CLI's ingest and delete through the server."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from caprl_index.cli import main
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow
PDFS = ("solar-market-report-2024.pdf", "city-transit-infographic.pdf")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-jobs")
    docs = root / "docs"
    docs.mkdir()
    for name in PDFS:
        shutil.copy(EXAMPLES / name, docs / name)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")  # truncated: must fail alone
    return root


@pytest.fixture(scope="module")
def server(corpus: Path) -> Iterator[Any]:
    from caprl_index.testing.service import ServeProcess

    env = {
        "CAPRL_QDRANT_PATH": str(corpus / "index" / "qdrant"),
        "CAPRL_INGEST_ROOTS": str(corpus / "docs"),
        "CAPRL_CAPTIONER": "none",  # figures are detected and stored; no caption server needed
        "CAPRL_VLLM_URL": "http://127.0.0.1:9/v1",
    }
    with ServeProcess(env) as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as client:
        yield client


def wait(http: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_a_job_reports_progress_and_failures_while_searches_answer(http: httpx.Client, corpus: Path) -> None:
    job = http.post("/v1/ingest", json={"paths": [str(corpus / "docs")]}).json()
    assert job["state"] in ("queued", "running") and job["kind"] == "ingest"
    snapshots, searches = [], []
    while True:
        snap = http.get(f"/v1/jobs/{job['id']}").json()
        snapshots.append(snap)
        if snap["state"] != "running" and snap["state"] != "queued":
            break
        started = time.monotonic()
        response = http.get("/v1/search", params={"q": "battery storage prices", "k": 3})
        searches.append((snap["progress"]["pages_done"], time.monotonic() - started, response.status_code))
    done = snapshots[-1]
    assert done["state"] == "done", done
    summary = done["summary"]
    assert summary["files_indexed"] == 2 and summary["files_failed"] == 1 and summary["pages"] == 7
    assert [f["path"] for f in done["failures"]] == [str(corpus / "docs" / "broken.pdf")]
    reason = done["failures"][0]["reason"]
    assert reason and "\n" not in reason and "Traceback" not in reason
    assert any(line.startswith("FAILED") and "broken.pdf" in line for line in summary["lines"])
    progress = done["progress"]
    assert progress["files_done"] == progress["files_total"] == 3 and progress["files_failed"] == 1
    assert progress["pages_done"] == progress["pages_total"] == 7
    assert [f["ok"] for f in done["files"]].count(True) == 2
    # Progress was visible while it ran, and searches were answered meanwhile (not queued behind the job).
    # Both files are parsed at once on two workers, so pages_done may go from 0 to 7 between two polls; what
    # counts is that the counts only grow and that done pages show while the job still embeds and writes.
    running = [s["progress"] for s in snapshots if s["state"] == "running"]
    for key in ("files_done", "pages_total", "pages_done", "captions_total"):
        seen = [p[key] for p in running] + [progress[key]]
        assert seen == sorted(seen), (key, seen)
    assert any(p["pages_done"] > 0 for p in running) or len(running) < 3
    answered = [s for s in searches if s[2] == 200]
    assert len(answered) == len(searches) >= 3
    assert max(seconds for _, seconds, _ in answered) < 10
    hits = http.get("/v1/search", params={"q": "battery storage prices by year", "k": 3}).json()
    assert hits and hits[0]["file_name"] == "solar-market-report-2024.pdf"
    files = {f["file_name"]: f for f in http.get("/v1/files").json()}
    assert files["broken.pdf"]["failed"] and files["broken.pdf"]["error"]
    # The evidence ingest kept is served: the figure crop and the page render behind a figure hit.
    figure = http.get("/v1/search", params={"q": "installed solar capacity chart", "kind": "figure"}).json()[0]
    crop = http.get("/v1/images/" + figure["image_uri"].rsplit("/", 1)[1].split(".")[0])
    assert crop.status_code == 200 and crop.headers["content-type"].startswith("image/")
    sha, page = figure["page_image_uri"].split("/")[1:3]
    thumb = http.get(f"/v1/pages/{sha}/{page.split('.')[0]}", params={"thumb": "true"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    box = ",".join(str(v) for v in figure["bbox"])
    drawn = http.get(f"/v1/pages/{sha}/{figure['page']}", params={"box": box})
    assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")


def test_jobs_outlive_their_client(http: httpx.Client, server: Any, corpus: Path) -> None:
    """The request that started a job can go away at once: the job runs to the end in the server."""
    before = {j["id"] for j in http.get("/v1/jobs").json()}
    body = json.dumps({"paths": [str(corpus / "docs" / PDFS[1])], "force": True, "no_figures": True}).encode()
    url = urlparse(server.url)
    with socket.create_connection((url.hostname, url.port)) as raw:
        raw.sendall(
            b"POST /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )  # and hang up without reading the answer
    deadline = time.monotonic() + 30
    new: list[dict[str, Any]] = []
    while not new and time.monotonic() < deadline:
        new = [j for j in http.get("/v1/jobs").json() if j["id"] not in before]
        time.sleep(0.1)
    assert new, "the job was started"
    job = wait(http, new[0]["id"])
    assert job["state"] == "done" and job["summary"]["files_indexed"] == 1


def test_one_job_writes_at_a_time(http: httpx.Client, corpus: Path) -> None:
    paths = [str(corpus / "docs" / PDFS[0])]
    first = http.post("/v1/ingest", json={"paths": paths, "force": True, "no_figures": True}).json()
    second = http.post("/v1/ingest", json={"paths": paths, "force": True, "no_figures": True}).json()
    assert second["state"] == "queued"
    a, b = wait(http, first["id"]), wait(http, second["id"])
    assert a["state"] == b["state"] == "done"
    assert b["started_at"] >= a["finished_at"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_cli_ingest_and_delete_go_through_the_server(server: Any, corpus: Path) -> None:
    index = str(corpus / "index" / "qdrant")
    rc, _, err = run_cli("ingest", str(corpus / "docs"), "--qdrant-path", index, "--force", "--no-figures")
    assert rc == 1, err  # broken.pdf failed; the others are indexed
    assert "ingest job" in err and f"on caprl-index serve at {server.url}" in err
    assert "files: 2 indexed, 0 unchanged, 1 failed" in err and "FAILED" in err and "broken.pdf" in err
    rc, _, err = run_cli("ingest", "/etc/hostname", "--qdrant-path", index)
    assert rc == 2 and "outside the server's ingest roots" in err and err.count("\n") == 1
    rc, _, err = run_cli("ingest", str(corpus / "docs"), "--qdrant-path", index, "--workers", "1")
    assert rc == 2 and "--workers: not available through caprl-index serve" in err
    target = str(corpus / "docs" / PDFS[1])
    rc, out, err = run_cli("delete", target, "--qdrant-path", index)
    assert rc == 0 and out.strip() == f"deleted {target}", err
    rc, _, err = run_cli("delete", target, "--qdrant-path", index)
    assert rc == 1 and "nothing indexed under" in err


def test_searches_keep_answering_from_many_clients_during_a_job(http: httpx.Client, corpus: Path) -> None:
    """Eight concurrent clients while a job writes: every search answers, none waits for the job."""
    job = http.post(
        "/v1/ingest", json={"paths": [str(corpus / "docs" / PDFS[0])], "force": True, "no_figures": True}
    ).json()
    errors: list[str] = []
    latencies: list[float] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30, trust_env=False) as mine:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                response = mine.get("/v1/search", params={"q": f"solar prices {n} {i}", "k": 5})
                latencies.append(time.monotonic() - started)
                if response.status_code != 200:
                    errors.append(response.text)
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        result = wait(http, job["id"])
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert result["state"] == "done"
    assert not errors and len(latencies) >= 16
    assert max(latencies) < 15, "a search waited behind the whole job"
