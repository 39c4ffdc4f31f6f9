"""HTTP plumbing of the fake caption server: a threading HTTP/1.1 server that can be killed like a process."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caprl_index.testing.fake_vllm import FakeVLLM


@dataclass(frozen=True)
class Reply:
    """A response to write; status 0 means close the connection without answering."""

    status: int
    body: bytes


class LoopbackServer(ThreadingHTTPServer):
    """Keeps its open connections so :meth:`cut_connections` can drop them all at once."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of clients must not overflow the accept backlog

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, app: FakeVLLM):
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._open_lock:
            self._open.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """Routes the server's endpoints to the :class:`FakeVLLM` that owns it."""

    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections to vLLM
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the request log instead of stderr noise

    def do_GET(self) -> None:
        app = self.server.app
        if app.dead:
            return self._send(Reply(0, b""))
        path = self.path.split("?", 1)[0]
        if path == "/health":
            return self._send(Reply(200, b""))
        if path == "/fake/stats":
            return self._send(Reply(200, json.dumps(app.stats()).encode()))
        if not app.authorized(self.headers.get("Authorization")):
            return self._send(Reply(401, b'{"error": "Unauthorized"}'))
        self._send(app.get(path) or Reply(404, b'{"detail": "Not Found"}'))

    def do_POST(self) -> None:
        app = self.server.app
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if app.dead:
            return self._send(Reply(0, b""))
        if not app.authorized(self.headers.get("Authorization")):
            return self._send(Reply(401, b'{"error": "Unauthorized"}'))
        self._send(app.post(self.path.split("?", 1)[0], raw) or Reply(404, b'{"detail": "Not Found"}'))

    def _send(self, reply: Reply) -> None:
        if reply.status == 0:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client gave up (timeout) or the server was killed
