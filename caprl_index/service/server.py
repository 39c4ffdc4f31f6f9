"""`caprl-index serve`: check the settings, open the service, bind, and run uvicorn until stopped.

The socket is bound before uvicorn starts, so `--port 0` gets a free port whose address can be printed and
left beside the index for the CLI, and a taken port is a one-line error rather than a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import socket
import sys
from typing import TYPE_CHECKING

from caprl_index.errors import ConfigError
from caprl_index.service.app import create_app
from caprl_index.service.client import remove_serve_file, write_serve_file
from caprl_index.service.core import Service
from caprl_index.service.security import check_bind, is_loopback
from caprl_index.service.threads import limit_blas_threads

if TYPE_CHECKING:
    from caprl_index.config import Settings

log = logging.getLogger("caprl_index.service")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
    # a response written in two parts (headers, body) waited 40 ms for a delayed ACK on every request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use: pick another with --port (or CAPRL_SERVE_PORT)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): check --host / CAPRL_SERVE_HOST") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # reachable from this machine either way
    shown = f"[{shown.strip('[]')}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


def run(settings: Settings, *, verbose: bool = False) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop."""
    import uvicorn

    host = settings.serve_host
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    check_bind(host, bool(api_key))
    limit_blas_threads()
    sock = bind(host, settings.serve_port)
    service = Service(settings)
    instance = secrets.token_hex(8)
    try:
        service.start()  # the index is opened (or reported in use) before a request can arrive
        url = url_of(sock, host)
        app = create_app(service, api_key=api_key, loopback_only=is_loopback(host), instance=instance)
        if not settings.qdrant_url:  # an embedded index: the CLI finds this server beside it
            write_serve_file(settings, url, instance)
            service.on_close.append(lambda: remove_serve_file(settings, instance))
        _announce(url, service, bool(api_key))
        config = uvicorn.Config(
            app, log_level="info" if verbose else "warning", access_log=verbose, timeout_graceful_shutdown=5
        )
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    finally:  # after SIGINT; after SIGTERM the app's shutdown has closed the service already
        service.close()
        sock.close()
    return 0


def _announce(url: str, service: Service, keyed: bool) -> None:
    roots = ", ".join(str(r) for r in service.roots)
    key = "; API key required" if keyed else ""
    where = f"{service.store.describe()}, collection {service.settings.collection!r}"
    print(f"caprl-index serve: {url}/ ({where}; ingest roots: {roots}{key})", file=sys.stderr, flush=True)
