"""Background jobs of the service: ingest runs and deletes, one at a time, on a writer thread of their own.

A job lives in the server, not in the request that started it: a client that disconnects (or a CLI that is
interrupted) leaves it running, and `GET /v1/jobs/{id}` reports its progress, failures and final summary.
Jobs are kept in memory (the last `KEEP_JOBS`); a restarted server forgets them, the index does not.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from caprl_index.errors import CaprlError
from caprl_index.progress import Reporter

log = logging.getLogger("caprl_index.service")
KEEP_JOBS = 200
JobKind = Literal["ingest", "delete"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]


@dataclass
class Progress:
    """What a running job has done so far (totals grow as files are opened and pages parsed)."""

    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    pages_total: int = 0
    pages_done: int = 0
    captions_total: int = 0
    captions_done: int = 0
    current_file: str | None = None


@dataclass
class Job:
    """One unit of writing: its request, its state and what it reported."""

    kind: JobKind
    paths: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    state: JobState = "queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = field(default_factory=Progress)
    failures: list[dict[str, str]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # finished files in order: path, ok, detail
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_json(self, files_from: int | None = 0) -> dict[str, Any]:
        """A consistent snapshot (the job thread updates it meanwhile); finished files from `files_from` on
        (None: none of them, for lists of jobs)."""
        with self.lock:
            start = len(self.files) if files_from is None else files_from
            return {
                "id": self.id,
                "kind": self.kind,
                "state": self.state,
                "paths": list(self.paths),
                "options": dict(self.options),
                "created_at": self.created_at,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "progress": dict(vars(self.progress)),
                "failures": [dict(f) for f in self.failures],
                "files_from": start,
                "files": [dict(f) for f in self.files[start:]],
                "warnings": list(self.warnings),
                "summary": self.summary,
                "result": self.result,
                "error": self.error,
            }

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class JobReporter(Reporter):
    """The pipeline's progress events, recorded on the job (and logged by the base class)."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def start(self, files: int) -> None:
        super().start(files)
        with self.job.lock:
            self.job.progress.files_total = files

    def file_started(self, path: str, pages: int) -> None:
        super().file_started(path, pages)
        with self.job.lock:
            self.job.progress.pages_total += pages
            self.job.progress.current_file = path

    def pages_done(self, n: int, figures: int) -> None:
        with self.job.lock:
            self.job.progress.pages_done += n
            self.job.progress.captions_total += figures

    def captions_done(self, n: int) -> None:
        with self.job.lock:
            self.job.progress.captions_done += n

    def file_done(self, path: str, ok: bool, detail: str = "") -> None:
        super().file_done(path, ok, detail)
        with self.job.lock:
            p = self.job.progress
            p.files_done += 1
            self.job.files.append({"path": path, "ok": ok, "detail": detail})
            if not ok:
                p.files_failed += 1
                self.job.failures.append({"path": path, "reason": detail})

    def warn(self, message: str) -> None:
        super().warn(message)
        with self.job.lock:
            if message not in self.job.warnings:
                self.job.warnings.append(message)


class JobRunner:
    """Runs jobs in order on one thread: one job writes at a time, reads go on meanwhile.

    The thread lowers its own CPU priority first (`nice`; on Linux a per-thread value that the threads and
    parser processes it starts inherit), so an ingest yields the CPU to searches on a small machine.
    """

    def __init__(self, work: Callable[[Job], None], *, nice: int = 0) -> None:
        self._work = work
        self._nice = nice
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._queue: collections.deque[Job] = collections.deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="caprl-jobs", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Job:
        with self._wake:
            if self._closed:
                raise CaprlError("the server is shutting down; start the job again once it is back")
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                oldest = next(iter(self._jobs.values()))
                if not oldest.finished:
                    break
                self._jobs.popitem(last=False)
            self._queue.append(job)
            self._wake.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._wake:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every kept job, newest first."""
        with self._wake:
            return list(reversed(self._jobs.values()))

    def pending(self) -> int:
        """Jobs queued or running."""
        with self._wake:
            return sum(1 for j in self._jobs.values() if not j.finished)

    def _loop(self) -> None:
        _lower_priority(self._nice)
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
            self._run(job)

    def _run(self, job: Job) -> None:
        with job.lock:
            job.state, job.started_at = "running", time.time()
        state: JobState = "done"
        error: str | None = None
        try:
            self._work(job)
        except CaprlError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # a bug: the job fails, the server goes on; the traceback goes to the log
            log.exception("job %s failed", job.id)
            state, error = "failed", f"internal error ({type(exc).__name__}: {exc}); see the server log"
        with job.lock:
            job.state, job.finished_at = state, time.time()
            job.progress.current_file = None
            if state == "failed":
                job.error = error
        job.done.set()

    def close(self) -> None:
        """Cancel queued jobs; a running one is left to end with the process (ingest is crash-safe)."""
        with self._wake:
            self._closed = True
            for job in self._queue:
                with job.lock:
                    job.state, job.error = "cancelled", "the server stopped before the job started"
                job.done.set()
            self._queue.clear()
            self._wake.notify()


def _lower_priority(nice: int) -> None:
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        # Added to the server's own: a server started under `nice` still puts its jobs below its searches.
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # not fatal: jobs then run at the server's priority
        log.warning("could not lower the ingest job priority (%s)", exc)
