"""The FastAPI application: the /v1 routers, the probes, the web page, and errors as one JSON line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from caprl_index import __version__
from caprl_index.errors import CaprlError, StoreError
from caprl_index.service.core import Service
from caprl_index.service.security import Guard, Refused

log = logging.getLogger("caprl_index.service")
STATIC = Path(__file__).parent / "static"
DESCRIPTION = (
    "The caprl-index index as a service: hybrid search over page text and figures with page and box "
    "provenance, the evidence images, and ingest jobs. Send `Authorization: Bearer <CAPRL_API_KEY>` when "
    "the server has a key."
)


def create_app(service: Service, *, api_key: str | None, loopback_only: bool, instance: str) -> FastAPI:
    """The app over a started `service`; its shutdown closes the service."""
    from caprl_index.service import routes_read, routes_write

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()  # before uvicorn re-raises a SIGTERM: the index is flushed and its lock released

    app = FastAPI(title="caprl-index", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.service, app.state.api_key, app.state.instance = service, api_key, instance
    app.include_router(routes_read.router)
    app.include_router(routes_write.router)
    app.include_router(routes_write.probes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    _error_handlers(app)
    app.add_middleware(Guard, loopback_only=loopback_only)
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error a client can meet is `{"error": "<one line naming the fix>"}`; tracebacks stay in the log."""

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(CaprlError)
    async def caprl_error(request: Request, exc: CaprlError) -> JSONResponse:
        return _error(503 if isinstance(exc, StoreError) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc.errors()) + "; the parameters are listed at /docs")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            detail = f"no such route {request.url.path!r}: the API is under /v1 (see /docs)"
        return _error(exc.status_code, detail)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the index is unchanged: see the server log")


def _validation_message(errors: Any) -> str:
    parts = []
    for e in list(errors)[:3]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
