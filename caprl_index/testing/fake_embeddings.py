"""A loopback server speaking OpenAI's `/v1/embeddings` protocol, for the embedding-server backend's tests.

Vectors are a deterministic function of each text (hashed words), so equal texts embed equally. A batch
holding a text that contains `poison` is answered with HTTP 500, every time: the batch's file must fail
alone while the run goes on.

    with FakeEmbeddings(poison="POISON") as server:
        settings = Settings(embed_url=server.url, embed_model="fake")
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIM = 16


def vector(text: str) -> list[float]:
    """A unit vector from the text's words: texts sharing words point the same way."""
    out = [0.0] * DIM
    for word in text.lower().split() or [""]:
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        out[digest[0] % DIM] += 1.0 + digest[1] / 255
    norm = math.sqrt(sum(v * v for v in out)) or 1.0
    return [v / norm for v in out]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *_: Any) -> None:  # quiet: tests read their own output
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        texts = body.get("input") or []
        texts = [texts] if isinstance(texts, str) else list(texts)
        app = self.server.app
        with app.lock:
            app.requests += 1
        if app.poison and any(app.poison in t for t in texts):
            self._reply(500, {"error": {"message": "the embedding model crashed on this batch", "code": 500}})
            return
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)]
        self._reply(200, {"object": "list", "data": data, "model": body.get("model"), "usage": {}})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: FakeEmbeddings


class FakeEmbeddings:
    """The server; `url` is its OpenAI base URL (`http://127.0.0.1:PORT/v1`)."""

    def __init__(self, *, poison: str | None = None) -> None:
        self.poison = poison
        self.requests = 0
        self.lock = threading.Lock()
        self._http = _Server(("127.0.0.1", 0), _Handler)
        self._http.app = self
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._http.serve_forever, name="fake-embeddings", daemon=True)

    def __enter__(self) -> FakeEmbeddings:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
