"""Service benchmark: `/v1/search` of a live `caprl-index serve` under N concurrent loopback clients, idle and
while an ingest job runs, next to the CLI's time per `caprl-index search` call.

The index holds 3,000 pages (24,000 points, 8 per page) with the real payload shapes
(`caprl_index.testing.store_points`: LlamaIndex's `_node_content`, image URIs, BM25 vectors over a Zipf
vocabulary), built once into --dir and reused. Queries are words of that vocabulary plus a counter, so
every request is a new query (the server's cache of recent query vectors never answers one) embedded by
the real query model; one in four carries a filter (kind, a file glob or a page range) as users do.

Each client is a thread with one keep-alive HTTP connection (http.client: little client CPU next to the
server's) sending requests back to back for --seconds. The "ingest" phase first starts an ingest job
(`POST /v1/ingest --force` of --docs, restarted whenever it ends) and measures while it runs. The CLI line
is `caprl-index search --json` as a new process per call: on its own (the server stopped: process start,
store open, model load every call) and through the running server.

Target (design.md): p50 <= 50 ms and p95 <= 200 ms at 8 clients on 2 cores, also while an ingest job runs.

    nice -n 10 python benchmarks/bench_serve.py [--clients 1,8] [--seconds 20] [--pages 3000]
        [--docs examples/docs] [--dir /tmp/caprl-bench-serve] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caprl_index.config import Settings  # noqa: E402
from caprl_index.testing.service import ServeProcess  # noqa: E402
from caprl_index.testing.store_points import POINTS_PER_PAGE, synthetic_points, synthetic_queries  # noqa: E402

BATCH = 2000


def build_index(folder: Path, pages: int) -> Path:
    """The synthetic index (reused when it already holds `pages` pages)."""
    from caprl_index.store import FileRecord, QdrantStore
    from caprl_index.testing.store_points import POINTS_PER_FILE, file_path, synthetic_payload

    qdrant = folder / "index" / "qdrant"
    marker = folder / f"built-{pages}"
    if marker.exists():
        return qdrant
    shutil.rmtree(folder / "index", ignore_errors=True)
    store = QdrantStore(Settings(qdrant_path=qdrant))
    total = pages * POINTS_PER_PAGE
    try:
        store.ensure_collection(384)
        started = time.perf_counter()
        for start in range(0, total, BATCH):
            store.upsert(synthetic_points(start, min(BATCH, total - start)))
        store.optimize()
        for f in range(total // POINTS_PER_FILE):  # a record per file, as ingest writes (globs read them)
            sha = synthetic_payload(f * POINTS_PER_FILE, "")["file_sha256"]
            pages_per_file = POINTS_PER_FILE // POINTS_PER_PAGE
            record = FileRecord(file_path(f), sha, complete=True, page_count=pages_per_file, points=POINTS_PER_FILE)
            store.put_record(record)
        print(f"built {total:,} points ({pages:,} pages) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        store.close()
    marker.touch()
    return qdrant


def query_paths(n: int, pages: int) -> list[str]:
    """`n` request paths: distinct texts, a quarter of them filtered."""
    texts = [q.text for q in synthetic_queries(256, pages * POINTS_PER_PAGE)]
    filters = ["&kind=text", "&file=report-00001*", "&pages=3-9"]
    out = []
    for i in range(n):
        extra = filters[(i // 4) % 3] if i % 4 == 0 else ""
        out.append(f"/v1/search?q={quote(f'{texts[i % len(texts)]} q{i}')}&k=10{extra}")
    return out


def load(url: str, clients: int, seconds: float, paths: list[str], pid: int | None = None) -> dict[str, Any]:
    """`clients` threads for `seconds`: requests/s, latency percentiles, and the server's CPU per request
    (its own threads only, not an ingest's parser processes): a cost that other load on the machine does
    not change, unlike the latencies."""
    import psutil

    server = psutil.Process(pid) if pid else None
    cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
    load_before = os.getloadavg()[0]
    host = urlparse(url)
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(10**9))
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        mine: list[float] = []
        while time.monotonic() < deadline:
            with lock:
                path = paths[next(counter) % len(paths)]
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(str(response.status))
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    pct = lambda q: percentile_ms(ordered, q)  # noqa: E731
    cpu = sum(server.cpu_times()[:2]) - cpu_before if server else float("nan")
    return {
        "clients": clients, "requests": len(ordered), "errors": len(errors), "rps": round(len(ordered) / elapsed, 1),
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        "server_cpu_ms_per_request": round(1000 * cpu / max(1, len(ordered)), 1),
        "loadavg": round((load_before + os.getloadavg()[0]) / 2, 1),
    }  # fmt: skip


def percentile_ms(ordered: list[float], q: float) -> float:
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else float("nan")


def cli_call_s(qdrant: Path, runs: int = 3, server: str | None = None) -> float:
    """Median wall time of one `caprl-index search --json` process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPRL_")}
    env.update(CAPRL_QDRANT_PATH=str(qdrant), CAPRL_CONFIG=str(qdrant / "none.toml"), PYTHONPATH=str(ROOT))
    times = []
    for i in range(runs):
        cmd = [sys.executable, "-m", "caprl_index.cli", "search", f"kalo mire tas {i}", "--json"]
        started = time.perf_counter()
        done = subprocess.run(cmd + (["--server", server] if server else []), env=env, capture_output=True)
        times.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr.decode()[-500:]
    return round(statistics.median(times), 2)


class IngestLoop:
    """Keeps one ingest job running (force: the same files again) until stopped; counts the jobs."""

    def __init__(self, url: str, docs: Path) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, timeout=60, trust_env=False)
        self.docs, self.jobs, self.job_id = docs, 0, ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._submit()
        while self.http.get(f"/v1/jobs/{self.job_id}").json()["progress"]["pages_done"] == 0:
            time.sleep(0.2)  # measure while pages are parsed, embedded and written, not while torch loads
        self.thread.start()

    def _submit(self) -> None:
        body = {"paths": [str(self.docs)], "force": True, "captioner": "none"}
        self.job_id = self.http.post("/v1/ingest", json=body).json()["id"]
        self.jobs += 1

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            if self.http.get(f"/v1/jobs/{self.job_id}").json()["state"] in ("done", "failed"):
                self._submit()

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join()
        while (job := self.http.get(f"/v1/jobs/{self.job_id}").json())["state"] not in ("done", "failed"):
            time.sleep(0.5)
        return {"jobs": self.jobs, "last_state": job["state"], "pages_last_job": job["progress"]["pages_done"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts [1,8]")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement [20]")
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--docs", type=Path, default=ROOT / "examples" / "docs", help="what the ingest job reads")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/caprl-bench-serve"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    qdrant = build_index(args.dir, args.pages)
    docs = args.dir / "docs"
    shutil.rmtree(docs, ignore_errors=True)
    shutil.copytree(args.docs.resolve(), docs)
    results: dict[str, Any] = {"pages": args.pages, "points": args.pages * POINTS_PER_PAGE, "cpus": os.cpu_count()}
    results["cli_local_s"] = cli_call_s(qdrant)
    paths = query_paths(50_000, args.pages)
    counts = [int(c) for c in args.clients.split(",")]
    env = {"CAPRL_QDRANT_PATH": str(qdrant), "CAPRL_INGEST_ROOTS": str(docs), "CAPRL_VLLM_URL": "http://127.0.0.1:9/v1"}
    with ServeProcess(env) as server:
        results["cli_through_server_s"] = cli_call_s(qdrant, server=server.url)
        load(server.url, 2, 3.0, paths[-500:])  # warm-up
        pid = server.proc.pid if server.proc else None
        results["idle"] = [load(server.url, n, args.seconds, paths, pid) for n in counts]
        ingest = IngestLoop(server.url, docs)
        ingest.start()
        results["during_ingest"] = [load(server.url, n, args.seconds, paths, pid) for n in counts]
        results["ingest"] = ingest.finish()
    report(results, as_json=args.json)


def report(r: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(r, indent=2))
        return
    print(f"index: {r['pages']:,} pages, {r['points']:,} points; {r['cpus']} CPUs")
    print(f"CLI `caprl-index search` per call: {r['cli_local_s']} s alone, {r['cli_through_server_s']} s via serve")
    heads = ("req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "cpu ms/req", "load")
    print(f"{'phase':<14}{'clients':>8}" + "".join(f"{h:>11}" for h in heads))
    keys = ("rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors", "server_cpu_ms_per_request", "loadavg")
    for phase in ("idle", "during_ingest"):
        for row in r[phase]:
            print(f"{phase:<14}{row['clients']:>8}" + "".join(f"{row[k]:>11}" for k in keys))
    best = r["idle"][0]["p50_ms"] / 1000
    cpu = r["idle"][-1]["server_cpu_ms_per_request"]
    print(f"1 client p50 vs CLI call: {r['cli_local_s'] / best:.0f}x faster; ingest jobs run meanwhile: "
          f"{r['ingest']['jobs']} ({r['ingest']['last_state']}); at {cpu} ms of server CPU per request, two idle "
          f"cores serve at most {2000 / cpu:.0f} req/s")  # fmt: skip


if __name__ == "__main__":
    main()
