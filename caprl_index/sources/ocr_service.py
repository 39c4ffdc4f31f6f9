"""OCR in one process shared by the parser workers, instead of an ONNX Runtime engine in every worker.

An engine costs each process that loads it ~60 MB of models plus the onnxruntime import, and every OCR
call raises that process's high-water mark by a few hundred MB; with the engine in every worker the tree
paid for it once per worker. Here the parent starts one OCR process (`OcrService`); workers send it the
image array over a Unix socket and get rapidocr's raw result back, so `ocr.py` works unchanged on either
side. The OCR process runs up to `engines` recognitions at once (one engine each: rapidocr's detector
keeps per-call state, so engines are not shared between threads) and trims its heap after each.

The OCR process is supervised: if it dies (a native crash, the OOM killer) the page being read fails
with `OcrUnavailable` — only its file fails — and the parent starts a new one for the pages that follow.
It ignores Ctrl-C and exits with the parent, like the parser workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

log = logging.getLogger("caprl_index")
CONNECT_TIMEOUT_S = 120.0  # a (re)starting OCR process imports rapidocr first: seconds on a busy machine

_client: tuple[str, bytes] | None = None  # in a parser worker: the OCR process's address and key
_conn: Connection | None = None
_conn_lock = threading.Lock()
_live: set[int] = set()  # pids of the OCR processes this process started (none outlives its run)


class OcrUnavailable(RuntimeError):
    """The OCR process could not read a page: it died or could not load its models."""


def live_pids() -> frozenset[int]:
    return frozenset(_live)


class OcrService:
    """The parent's handle on the OCR process: starts it, restarts it when it dies, stops it."""

    poll_s = 0.5  # how often the supervisor looks for a dead OCR process

    def __init__(self, engines: int, threads: int = 1) -> None:
        self.engines = max(1, engines)
        self.threads = max(1, threads)  # ONNX Runtime threads of each engine
        self._dir = tempfile.mkdtemp(prefix="caprl-ocr-")
        self.address = os.path.join(self._dir, "ocr.sock")
        self.authkey = os.urandom(16)
        self._closing = threading.Event()
        self._proc: Any = None
        self._start()
        self._watch = threading.Thread(target=self._supervise, name="caprl-ocr-watch", daemon=True)
        self._watch.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def client_args(self) -> tuple[str, bytes]:
        """What a worker needs to reach this service (passed to `use_service` in the worker)."""
        return self.address, self.authkey

    def _start(self) -> None:
        from caprl_index.workers import sigint_blocked

        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(
            target=serve,
            args=(self.address, self.authkey, self.engines, os.getpid(), self.threads),
            name="caprl-ocr",
            daemon=True,
        )
        with sigint_blocked():  # Ctrl-C is the parent's to handle (see workers.sigint_blocked)
            proc.start()
        self._proc = proc
        _live.add(proc.pid or 0)

    def _supervise(self) -> None:
        while not self._closing.is_set():
            self._proc.join(timeout=self.poll_s)
            if self._proc.exitcode is None or self._closing.is_set():
                continue
            _live.discard(self._proc.pid)
            log.warning("the OCR process exited (code %s); starting a new one", self._proc.exitcode)
            time.sleep(0.2)  # a process that dies at start must not spin
            self._start()

    def close(self) -> None:
        self._closing.set()
        # Stopping the process first ends the supervisor's join at once instead of at its next poll
        # (0-0.5 s, the last thing a cold ingest waited for).
        if self._proc.is_alive():
            self._proc.terminate()
        self._watch.join()
        if self._proc.is_alive():  # one the supervisor started meanwhile, after the old one died
            self._proc.terminate()
        self._proc.join(5)
        _live.discard(self._proc.pid)
        shutil.rmtree(self._dir, ignore_errors=True)


# --- worker side -------------------------------------------------------------------------------


def use_service(client_args: tuple[str, bytes] | None) -> None:
    """In a parser worker: send OCR to the service at `client_args` (None: OCR in this process)."""
    global _client
    _client = client_args


def remote_engine() -> RemoteEngine | None:
    """The service's stand-in for a rapidocr engine, when this process was told to use one."""
    return RemoteEngine() if _client is not None else None


class RemoteEngine:
    """Called like `RapidOCR`: sends the array to the OCR process and returns its result."""

    def __call__(self, array: Any, **kwargs: Any) -> Any:
        global _conn
        with _conn_lock:
            try:
                conn = _conn or _connect()
                _conn = conn
                conn.send((array, kwargs))
                status, value = conn.recv()
            except (EOFError, OSError) as exc:
                _conn = None  # the next page connects to the restarted process
                raise OcrUnavailable(
                    f"the OCR process stopped while reading a page of this file ({type(exc).__name__}); "
                    "it crashed or was killed (out of memory?): the next ingest retries the file"
                ) from None
        if status != "ok":
            raise OcrUnavailable(f"OCR failed in the OCR process: {value}")
        return value


def _connect() -> Connection:
    assert _client is not None
    address, authkey = _client
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return Client(address, family="AF_UNIX", authkey=authkey)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise OcrUnavailable(f"the OCR process did not start within {CONNECT_TIMEOUT_S:.0f} s") from None
            time.sleep(0.05)


# --- OCR process side ----------------------------------------------------------------------------


def serve(address: str, authkey: bytes, engines: int, parent_pid: int, threads: int = 1) -> None:
    """Main of the OCR process: one thread per connected worker, at most `engines` recognitions at once,
    each engine on `threads` ONNX Runtime threads."""
    from caprl_index.workers import worker_init

    worker_init(parent_pid, exit_fast=False)  # this process ends by SIGTERM; a crash keeps its exit status
    _name_process(b"caprl-ocr")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)  # left by a predecessor that died
    pool = _EnginePool(engines, threads)
    with Listener(address, family="AF_UNIX", authkey=authkey) as listener:
        while True:
            try:
                conn = listener.accept()
            except Exception:  # a client that failed the handshake; the others go on
                continue
            threading.Thread(target=_serve_one, args=(conn, pool), daemon=True).start()


def _name_process(name: bytes) -> None:
    """Show this process as `name` in ps/top (and to benchmarks); Linux only, best effort."""
    from caprl_index.memory import _libc

    libc = _libc()
    if libc is not None:
        libc.prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def _serve_one(conn: Connection, pool: _EnginePool) -> None:
    from caprl_index.memory import trim_heap

    with conn:
        while True:
            try:
                array, kwargs = conn.recv()
            except (EOFError, OSError):
                return  # the worker exited or was recycled
            try:
                with pool.engine() as engine:
                    reply: tuple[str, Any] = ("ok", engine(array, **kwargs))
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            del array
            trim_heap()  # one recognition leaves ~250 MB of freed heap behind; hand it back
            conn.send(reply)


class _EnginePool:
    """Up to `size` rapidocr engines, created on first need, each used by one thread at a time."""

    def __init__(self, size: int, threads: int = 1) -> None:
        self._threads = threads
        self._free: queue.Queue[Any] = queue.Queue()
        self._slots = threading.BoundedSemaphore(size)
        self._made = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def engine(self) -> Any:
        with self._slots:
            try:
                engine = self._free.get_nowait()
            except queue.Empty:
                engine = self._make()
            try:
                yield engine
            finally:
                self._free.put(engine)

    def _make(self) -> Any:
        from caprl_index.sources.ocr import new_engine

        with self._lock:
            self._made += 1
        return new_engine(self._threads)
