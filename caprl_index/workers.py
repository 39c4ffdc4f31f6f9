"""The splitting pool: page parsing in worker processes, with crash isolation and flat memory.

A worker that dies (a native crash on a hostile file) breaks the whole `ProcessPoolExecutor`; `SplitPool`
then starts a new pool and retries each interrupted task alone in a process of its own, so only the
culprit fails. Workers are recycled every WORKER_TASKS batches and give MuPDF's cache and the freed heap
back after each batch.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from caprl_index.config import Settings
from caprl_index.errors import CorruptFile
from caprl_index.models import ParsedPage

if TYPE_CHECKING:
    from caprl_index.sources.ocr_service import OcrService

log = logging.getLogger("caprl_index")
WORKER_TASKS = 100  # page batches a worker process handles before it is replaced
T = TypeVar("T")


class SplitPool:
    """Runs parsing jobs on worker processes (a thread for one worker); a crashed worker fails only its job.

    With `ocr_process` the workers share one OCR process (ocr_service.py) instead of loading an OCR
    engine each; a single thread-worker keeps OCR in this process (no process to share it with).
    """

    def __init__(self, workers: int, *, ocr_process: bool = True, ocr_engines: int = 0) -> None:
        self.workers = workers
        self.ocr: OcrService | None = None
        if ocr_process and workers > 1:
            from caprl_index.sources.ocr_service import OcrService

            engines = min(ocr_engines or workers, workers)  # the cores go to fewer engines, more threads each
            self.ocr = OcrService(engines, threads=max(1, workers // engines))
        self._init = (os.getpid(), self.ocr.client_args if self.ocr else None)
        self._pool: Executor = make_pool(workers, self._init)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            with sigint_blocked():
                job = loop.run_in_executor(pool, fn, *args)
            return await job
        except BrokenExecutor:
            self._replace(pool)
        isolated = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=worker_init, initargs=self._init
        )
        try:
            with sigint_blocked():
                job = loop.run_in_executor(isolated, fn, *args)
            return await job
        except BrokenExecutor:
            reason = "the parser process crashed on this file; it is damaged or hostile: re-export it"
            raise CorruptFile(_file_of(args), reason) from None
        finally:
            isolated.shutdown(wait=False, cancel_futures=True)

    def _replace(self, broken: Executor) -> None:
        if self._pool is broken:  # the first of the interrupted jobs replaces it; the others reuse the new one
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = make_pool(self.workers, self._init)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.ocr is not None:
            self.ocr.close()


def make_pool(workers: int, initargs: tuple[int, tuple[str, bytes] | None] | None = None) -> Executor:
    """Worker processes for splitting; a thread for a single small job (no process start-up cost)."""
    if workers <= 1:
        return ThreadPoolExecutor(1, thread_name_prefix="caprl-split")
    # spawn, not fork: the parent holds torch's threads and an open Qdrant store.
    # Workers are recycled now and then: native libraries (MuPDF, ONNX Runtime) fragment the heap
    # on large pages, and a fresh process is the only reliable way to hand that memory back.
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        max_tasks_per_child=WORKER_TASKS,
        initializer=worker_init,
        initargs=initargs or (os.getpid(), None),
    )


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while it submits: workers it spawns (and the pool's management thread,
    which spawns replacements) inherit the mask, so a Ctrl-C never interrupts a worker, not even while it
    is still importing. The parent handles Ctrl-C; a signal arriving meanwhile is delivered on exit."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    # The resource tracker's first start blocks SIGINT around its own spawn and then *unblocks* it in
    # this thread, which would undo the block below for the process being started: start it first.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def worker_init(parent_pid: int, ocr_client: tuple[str, bytes] | None = None, *, exit_fast: bool = True) -> None:
    """Set up a parser process: Ctrl-C is the parent's to handle, the worker dies with its parent, it sends
    OCR to the OCR process at `ocr_client` (when given) and never loads PyMuPDF's layout model.

    The terminal sends SIGINT to the whole process group; the parent shuts the pool down, so workers
    ignore it (no traceback from every worker; `sigint_blocked` covers the start-up before this runs).
    A parent killed outright (SIGKILL, OOM) cannot tell its workers, so each watches for it and exits.
    (PR_SET_PDEATHSIG would fire when the *thread* that spawned the worker ends, which for a recycled
    worker is the pool's management thread.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _skip_unused_models()
    if ocr_client is not None:
        from caprl_index.sources.ocr_service import use_service

        use_service(ocr_client)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="caprl-parent-watch", daemon=True).start()
    if exit_fast:
        atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    """A parser process's last step, once its work loop has returned and multiprocessing has cleaned up: end
    it without tearing its interpreter down. That teardown (every module, MuPDF, OpenCV) took 0.1-0.3 s at
    the end of each run while the pool waited for it, and a recycled worker's replacement waited as long.
    Registered as the worker starts, it runs after the atexit handlers registered later and instead of those
    registered earlier; of those, logging's flush is what matters, so it is done here, with the streams'.
    Its exit status is 0: a worker that fails is told by the pool from the task it did not answer."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _skip_unused_models() -> None:
    """`import pymupdf` imports `pymupdf.layout`, which loads its ONNX layout model (and onnxruntime) at
    import, and `pymupdf4llm` when installed: ~55 MB and ~1 s per process for models the parser never
    calls (see layout_model_recall.py). A None entry in sys.modules makes pymupdf skip both."""
    if "pymupdf" in sys.modules:  # imported before the initializer ran (a parent's __main__): too late
        return
    for name in ("pymupdf.layout", "pymupdf4llm"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def _exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    os._exit(1)


def parse_batch(prepared: Any, start: int, stop: int, settings: Settings) -> list[ParsedPage]:
    """Worker side of a page batch: parse, then give MuPDF's cache and the freed heap back (flat memory)."""
    from caprl_index.evidence.render import with_renders
    from caprl_index.sources import parse_pages

    try:
        pages = parse_pages(prepared, start, stop, settings)
        try:
            return with_renders(prepared, pages, settings)
        except Exception as exc:  # a page image is evidence, not content: the pages are indexed without it
            log.warning("%s: pages %d-%d not rendered for viewing (%s)", prepared.file.path, start + 1, stop, exc)
            return pages
    finally:
        import pymupdf

        from caprl_index.memory import trim_heap

        pymupdf.TOOLS.store_shrink(100)
        trim_heap()


def _file_of(args: tuple) -> str:
    first = args[0] if args else None
    file = getattr(first, "file", first)
    return str(getattr(file, "path", "?"))
