"""What the service refuses: missing keys, foreign hosts, big or non-JSON bodies, paths outside its roots.

- The API key (`CAPRL_API_KEY`, from the environment or the config file, never argv) is required on every
  /v1 route once set, and `serve` will not bind beyond loopback without one.
- Bound to loopback, only loopback Host headers are answered: a web page elsewhere cannot reach the API
  through DNS rebinding. Writes must be `application/json`, which a cross-site form cannot send without a
  CORS preflight that this server never grants.
- Ingest paths must lie under the configured roots, both as named and with symbolic links resolved, and so
  must every file found under them.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from caprl_index.errors import CaprlError, ConfigError

MAX_BODY_BYTES = 1 << 20  # an ingest or delete request is a list of paths
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_WRITE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})
# The page's own scripts and styles only; images from here (and blob: URLs the page makes when a key is needed).
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Refused(CaprlError):
    """A request the service will not serve; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, has_key: bool) -> None:
    """Refuse to serve beyond loopback without an API key."""
    if not is_loopback(host) and not has_key:
        raise ConfigError(
            f"serve --host {host} makes the index reachable from other machines: set an API key first, "
            "CAPRL_API_KEY in the environment or api_key in caprl-index.toml (never on the command line)"
        )


def key_matches(expected: str, headers: Any) -> bool:
    """`Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""
    auth = headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """ASGI middleware: Host check on loopback, body limit and JSON-only writes, security headers."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _refuse(send, *refusal)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, self._limited(receive), send_with_headers)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0] if b"host" in headers else ""
        if self.loopback_only and host and host not in LOOPBACK_HOSTS:
            return 421, f"this server answers on 127.0.0.1 only, not as {host!r}; open http://127.0.0.1:<port>/"
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, f"request body over {self.max_body} bytes: send fewer paths per request"
        method = scope["method"].encode()
        body = length not in (None, b"0") or b"transfer-encoding" in headers
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if method in _WRITE_METHODS and body and kind != b"application/json":
            return 415, "send the request body as JSON (Content-Type: application/json)"
        return None

    def _limited(self, receive: Receive) -> Receive:
        """`receive` that stops a chunked body at the limit (a Content-Length one was checked up front)."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise Refused(413, f"request body over {self.max_body} bytes: send fewer paths per request")
            return message

        return limited


async def _refuse(send: Send, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def check_ingest_paths(raw: Sequence[str], roots: Sequence[Path]) -> list[str]:
    """The paths to ingest, absolute; `Refused` (403) when one of them, or a file under it, is outside `roots`.

    Checked twice: as named (`..` folded) and with every symbolic link resolved, so neither `root/../etc`
    nor a link inside a root that points elsewhere gets out. (A link swapped between this check and the
    read is not caught: whoever can write inside a root is trusted that far.)
    """
    from caprl_index.sources.discover import absolute, iter_paths

    real_roots = [Path(os.path.realpath(r)) for r in roots]
    shown = ", ".join(str(r) for r in roots)
    out = []
    for item in raw:
        if not os.path.isabs(item):
            raise Refused(400, f"{item!r}: give absolute paths (they are read on the server's disk)")
        path = absolute(item)
        if not _under(path, roots) or not _under(Path(os.path.realpath(path)), real_roots):
            raise Refused(403, f"{path} is outside the server's ingest roots ({shown}); set CAPRL_INGEST_ROOTS")
        if not os.path.lexists(path):
            raise Refused(404, f"{path}: no such file or folder on the server")
        out.append(str(path))
    for found in iter_paths(out):
        if not _under(Path(os.path.realpath(found)), real_roots):
            raise Refused(403, f"{found} links to a file outside the server's ingest roots ({shown}): remove it")
    return out
