"""The CLI's way into a running `caprl-index serve`: find it, then call its /v1 API.

`serve` leaves its address in a small file beside the index it holds (`serve/<collection>.json` next to the
`qdrant` folder) and removes it when it stops. `search`, `status`, `ingest` and `delete` look there (unless
`--server URL` / `CAPRL_SERVER_URL` names a server), check that the server answering is the one that wrote the
file (a pid can be reused, a port too), and go through it instead of opening the folder that serve holds.
The API key (`CAPRL_API_KEY`) is sent when configured; the file never holds it.

This module imports no server code (FastAPI, uvicorn): it is on the CLI's path.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caprl_index.errors import CaprlError, ConfigError, StoreError

if TYPE_CHECKING:
    import argparse

    import httpx

    from caprl_index.config import Settings

TIMEOUT_S = 30.0


def add_server_option(parser: argparse.ArgumentParser) -> None:
    """`--server URL` on the commands that can go through a running server."""
    hint = "go through this caprl-index serve (default: the one holding the index) [CAPRL_SERVER_URL]"
    parser.add_argument("--server", metavar="URL", help=hint)


def serve_file(settings: Settings) -> Path:
    """Where a `serve` holding this embedded index leaves its address."""
    return Path(os.path.abspath(settings.qdrant_path)).parent / "serve" / f"{settings.collection}.json"


def write_serve_file(settings: Settings, url: str, instance: str) -> Path:
    path = serve_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"url": url, "pid": os.getpid(), "instance": instance, "index_dir": str(path.parent.parent)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def remove_serve_file(settings: Settings, instance: str) -> None:
    info = _read(serve_file(settings))
    if info and info.get("instance") == instance:  # only our own: another serve may have taken over
        serve_file(settings).unlink(missing_ok=True)


def server_for(settings: Settings, flag: str | None = None) -> ServiceClient | None:
    """The server to go through: `--server`, else CAPRL_SERVER_URL, else the serve holding the embedded index."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    url = flag or settings.server_url
    if url:
        client = ServiceClient(url.rstrip("/"), key)
        client.health()  # unreachable: one line naming the fix, not a traceback later
        return client
    if settings.qdrant_url:
        return None  # a Qdrant server takes any number of processes: nothing to go through
    info = _read(serve_file(settings))
    if not info or not _pid_alive(int(info.get("pid", 0))):
        return None
    client = ServiceClient(str(info["url"]), key)
    try:
        same = client.health().get("instance") == info.get("instance")
    except StoreError:
        return None  # a serve that died without cleaning up: the folder's lock tells the rest
    return client if same else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "url" in data else None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class ServiceClient:
    """The /v1 API over HTTP; errors come back as `CaprlError` with the server's one-line message."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = TIMEOUT_S) -> None:
        import httpx

        self.url = url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http: httpx.Client = httpx.Client(base_url=url, headers=headers, timeout=timeout, trust_env=False)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def search(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """`GET /v1/search`: the objects of `search --json`."""
        clean = {k: v for k, v in params.items() if v not in (None, False)}
        return self._call("GET", "/v1/search", params={"q": query, **clean})

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def delete(self, paths: list[str]) -> dict[str, Any]:
        """`DELETE /v1/files`: the finished delete job, or the queued one when a job is writing."""
        return self._call("DELETE", "/v1/files", json={"paths": paths})

    def ingest(self, paths: list[str], **options: Any) -> dict[str, Any]:
        """`POST /v1/ingest`: the job it started."""
        return self._call("POST", "/v1/ingest", json={"paths": paths, **options})

    def job(self, job_id: str, files_from: int = 0) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{job_id}", params={"files_from": files_from})

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        *,
        files_from: Callable[[], int] = lambda: 0,
        interval_s: float = 0.5,
    ) -> dict[str, Any]:
        """Poll a job until it has finished; `on_update(job)` after each poll, which lists the files finished
        since `files_from()`."""
        while True:
            job = self.job(job_id, files_from())
            if on_update is not None:
                on_update(job)
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(interval_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(
                f"cannot reach caprl-index serve at {self.url} ({type(exc).__name__}): start it, or fix "
                "--server / CAPRL_SERVER_URL"
            ) from None
        if response.status_code < 400:
            return response.json()
        raise _error(self.url, response)


def _error(url: str, response: httpx.Response) -> CaprlError:
    try:
        message = str(response.json().get("error") or response.text)
    except ValueError:
        message = response.text.strip()[:300] or response.reason_phrase
    if response.status_code == 401:
        return ConfigError(f"caprl-index serve at {url}: {message}")
    return ConfigError(message) if response.status_code < 500 else StoreError(f"serve at {url}: {message}")
