"""Request and response shapes of the /v1 API, as its OpenAPI schema documents them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_K = 100
MAX_QUERY_CHARS = 1000
MAX_PATHS = 1000
MAX_PATH_CHARS = 4096

Paths = list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS)]]


class HitOut(BaseModel):
    """One search result: exactly an object of `caprl-index search --json`."""

    id: str
    score: float
    file_path: str
    file_name: str
    page: int = Field(description="1-based page (slide) number")
    page_width: float | None = Field(description="page size in PDF points")
    page_height: float | None
    kind: str = Field(description="text, figure or page")
    figure_type: str | None
    bbox: list[float] | None = Field(description="x0,y0,x1,y1 in PDF points, origin top-left")
    caption_source: str | None = Field(description="vllm, ocr or none (figure and page kinds)")
    caption_model: str | None
    image_uri: str | None = Field(description="the figure crop, relative to the image root: GET /v1/images/{sha}")
    page_image_uri: str | None = Field(description="the page render: GET /v1/pages/{file_sha256}/{page}")
    text: str


class IngestIn(BaseModel):
    """Files and folders on the server's disk, under its ingest roots, and the switches of `ingest`."""

    model_config = ConfigDict(extra="forbid")

    paths: Paths = Field(min_length=1, max_length=MAX_PATHS, description="absolute paths on the server")
    force: bool = Field(default=False, description="re-ingest unchanged files too")
    prune: bool = Field(default=False, description="remove indexed files that are no longer on disk")
    recaption: bool = Field(default=False, description="re-caption figures made with an older prompt")
    strict: bool = Field(default=False, description="stop at the first file that fails")
    captioner: Literal["auto", "vllm", "ocr", "none"] | None = Field(default=None, description="default: server's")
    no_figures: bool = Field(default=False, description="index page text only")


class DeleteIn(BaseModel):
    """Files (or folders: everything indexed under them) whose points and records are removed."""

    model_config = ConfigDict(extra="forbid")

    paths: Paths = Field(min_length=1, max_length=MAX_PATHS, description="absolute paths as ingested")


class ProgressOut(BaseModel):
    files_total: int
    files_done: int
    files_failed: int
    pages_total: int
    pages_done: int
    captions_total: int
    captions_done: int
    current_file: str | None


class JobOut(BaseModel):
    """A background job (ingest or delete): its state, progress, failures and, once done, its summary."""

    id: str
    kind: Literal["ingest", "delete"]
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    paths: list[str]
    options: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: ProgressOut
    failures: list[dict[str, str]] = Field(description="files that failed: path, reason")
    files_from: int
    files: list[dict[str, Any]] = Field(description="finished files from `files_from` on: path, ok, detail")
    warnings: list[str]
    summary: dict[str, Any] | None = Field(description="ingest: the run's counters and the CLI's summary lines")
    result: dict[str, Any] | None = Field(description="delete: the paths deleted")
    error: str | None


class PointOut(BaseModel):
    id: str
    payload: dict[str, Any] = Field(description="the stored payload (see the README's payload keys)")


class ErrorOut(BaseModel):
    error: str = Field(description="one line saying what is wrong and how to fix it")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 415, 422, 503)
}
