"""/v1 reads: search, points, images, page renders, files, documents, status."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from caprl_index.errors import ConfigError
from caprl_index.search import SearchFilters
from caprl_index.service import images
from caprl_index.service.core import SearchRequest, Service
from caprl_index.service.schemas import ERRORS, MAX_K, MAX_QUERY_CHARS, HitOut, PointOut
from caprl_index.service.security import Refused, key_matches

IMMUTABLE = {"Cache-Control": "private, max-age=31536000, immutable"}  # content-addressed / per file version


def require_key(request: Request) -> None:
    """Every /v1 route: the API key, when the server has one."""
    key = request.app.state.api_key
    if key and not key_matches(key, request.headers):
        raise Refused(401, "missing or wrong API key: send Authorization: Bearer <CAPRL_API_KEY>")


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


Svc = Annotated[Service, Depends(service)]
router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=ERRORS)


@router.get("/search", response_model=list[HitOut], summary="Search: the objects of `caprl-index search --json`")
async def search(
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="the query")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="results")] = 10,
    kind: Annotated[Literal["text", "figure", "page"] | None, Query(description="only this kind")] = None,
    file: Annotated[str | None, Query(max_length=1000, description="glob on the path or the name")] = None,
    pages: Annotated[str | None, Query(max_length=40, description="A-B, A-, -B or A (from 1)")] = None,
    group_by: Annotated[Literal["page"] | None, Query(description="page: the best chunk per page")] = None,
    dense_only: Annotated[bool, Query(description="no BM25 fusion")] = False,
) -> Response:
    from caprl_index.commands.search import page_range

    if not q.strip():
        raise Refused(422, "q is empty: give the words to search for")
    try:
        lo, hi = page_range(pages)
    except ConfigError as exc:
        raise Refused(422, str(exc).replace("--pages", "pages=")) from None
    request = SearchRequest(
        text=q,
        k=k,
        filters=SearchFilters(kind=kind, file_glob=file, page_from=lo, page_to=hi),
        group_by_page=group_by == "page",
        hybrid=not dense_only,
    )
    # Built by `Hit.as_json()` already: returned as is, not validated again (this is the hot path).
    return JSONResponse(await svc.search(request))


@router.get("/points/{point_id}", response_model=PointOut, summary="One point and its payload")
async def point(svc: Svc, point_id: str) -> Any:
    try:
        uuid.UUID(point_id)
    except ValueError:
        raise Refused(422, f"{point_id[:80]!r} is not a point id (a UUID, the `id` of a search hit)") from None
    found = await svc.point(point_id)
    if found is None:
        raise Refused(404, f"no point {point_id} in the index (re-ingested since?)")
    return found


@router.get("/images/{image_sha256}", summary="A figure crop, as sent to the captioner")
async def image(svc: Svc, image_sha256: str) -> Response:
    path, mime = images.crop_file(svc.images, image_sha256)
    return FileResponse(path, media_type=mime, headers=IMMUTABLE)


@router.get("/pages/{file_sha256}/{page}", summary="A page render; `box` draws a region on it")
async def page_image(
    svc: Svc,
    file_sha256: str,
    page: Annotated[int, PathParam(ge=1, le=100_000)],
    thumb: Annotated[bool, Query(description="the small thumbnail")] = False,
    box: Annotated[str | None, Query(max_length=200, description="x0,y0,x1,y1 in PDF points: drawn")] = None,
) -> Response:
    path = images.page_file(svc.images, file_sha256, page, thumb=thumb)
    if box is None:
        return FileResponse(path, media_type="image/webp", headers=IMMUTABLE)
    region = images.parse_box(box)
    size = await svc.store_thread.run_read(svc.page_size, file_sha256, page)
    if size is None:
        raise Refused(404, f"page {page} of file {file_sha256[:12]}… has no points with a page size")
    png = await run_in_threadpool(images.draw_box, path, region, size)
    return Response(png, media_type="image/png", headers=IMMUTABLE)


@router.get("/files", summary="Every indexed (or failed) file: status, failures, pending captions")
async def files(svc: Svc) -> list[dict[str, Any]]:
    return await svc.files()


@router.get("/documents/{file_sha256}", summary="A file's pages and its figures with their boxes")
async def document(svc: Svc, file_sha256: str) -> dict[str, Any]:
    if not images.SHA256.fullmatch(file_sha256):
        raise Refused(422, "file_sha256 must be 64 lower-case hex digits")
    found = await svc.document(file_sha256)
    if found is None:
        raise Refused(404, f"no indexed file with sha256 {file_sha256}")
    return found


@router.get("/status", summary="The object of `caprl-index status --json`")
async def status(svc: Svc) -> dict[str, Any]:
    return await svc.status()
