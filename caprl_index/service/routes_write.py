"""/v1 writes (ingest jobs, deletes), jobs, and the unauthenticated probes /healthz and /readyz."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from caprl_index.service.routes_read import Svc, require_key
from caprl_index.service.schemas import ERRORS, DeleteIn, IngestIn, JobOut
from caprl_index.service.security import Refused, check_ingest_paths

DELETE_WAIT_S = 10.0  # a delete answers when done, unless it waits behind a running job
VLLM_PROBE_TTL_S = 10.0

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=ERRORS)
probes = APIRouter()


@router.post("/ingest", status_code=202, response_model=JobOut, summary="Start an ingest job")
async def start_ingest(svc: Svc, body: IngestIn) -> JSONResponse:
    paths = await run_in_threadpool(check_ingest_paths, body.paths, svc.roots)
    options = body.model_dump(exclude={"paths", "no_figures"})
    options["figures"] = False if body.no_figures else None
    job = svc.submit_ingest(paths, options)
    return JSONResponse(job.as_json(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/jobs", response_model=list[JobOut], summary="Jobs, newest first (without their file lists)")
async def list_jobs(svc: Svc) -> JSONResponse:
    return JSONResponse([job.as_json(files_from=None) for job in svc.jobs.jobs()])


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's state, progress, failures, summary")
async def get_job(
    svc: Svc, job_id: str, files_from: Annotated[int, Query(ge=0, description="finished files from here on")] = 0
) -> JSONResponse:
    job = svc.jobs.get(job_id)
    if job is None:
        raise Refused(404, f"no job {job_id[:40]!r} (jobs are kept in memory: was the server restarted?)")
    return JSONResponse(job.as_json(files_from=files_from))


@router.delete("/files", response_model=JobOut, summary="Remove files (or folders) from the index")
async def delete_files(svc: Svc, body: DeleteIn) -> JSONResponse:
    from caprl_index.sources.discover import absolute

    relative = [p for p in body.paths if not os.path.isabs(p)]
    if relative:
        raise Refused(400, f"{relative[0]!r}: give absolute paths, as they were ingested")
    job = svc.submit_delete([str(absolute(p)) for p in body.paths])
    done = await asyncio.to_thread(job.done.wait, DELETE_WAIT_S)
    return JSONResponse(job.as_json(), status_code=200 if done else 202, headers={"Location": f"/v1/jobs/{job.id}"})


@probes.get("/healthz", summary="The process is up (no key needed)")
async def healthz(request: Request) -> dict[str, Any]:
    return {"ok": True, "instance": request.app.state.instance}


@probes.get("/readyz", summary="Store open, embedding model loaded; vLLM reachable or not (no key needed)")
async def readyz(request: Request) -> JSONResponse:
    svc = request.app.state.service
    vllm = await _vllm(request)
    ready = svc.ready
    body = {
        "ready": ready,
        "store": {"open": svc.store_thread.alive, "index": svc.store.describe(), "collection": svc.store.collection},
        "embedding_model": {"loaded": svc.encoder is not None, "name": svc.settings.embed_model},
        "vllm": vllm,
        "jobs_pending": svc.jobs.pending(),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _vllm(request: Request) -> dict[str, Any]:
    """Whether a caption server lists the model (cached a few seconds: probes must stay cheap)."""
    state = request.app.state
    cached = getattr(state, "vllm_probe", None)
    if cached and time.monotonic() - cached[0] < VLLM_PROBE_TTL_S:
        return dict(cached[1])
    result = await _probe_vllm(state.service.settings)
    state.vllm_probe = (time.monotonic(), result)
    return result


async def _probe_vllm(settings: Any) -> dict[str, Any]:
    import httpx

    key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    details = []
    async with httpx.AsyncClient(timeout=2.0, headers=headers, trust_env=False) as client:
        for url in settings.vllm_url:
            try:
                response = await client.get(f"{url}/models")
                ids = [m.get("id") for m in response.json().get("data", [])] if response.status_code == 200 else []
                listed = settings.vllm_model in ids
                details.append(f"{url}: {'serves' if listed else 'does not list'} {settings.vllm_model}")
                if listed:
                    return {"reachable": True, "detail": details[-1]}
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                details.append(f"{url}: {type(exc).__name__}")
    note = "figures are indexed with OCR text until it is"
    return {"reachable": False, "detail": "; ".join(details) + f" ({note})"}
