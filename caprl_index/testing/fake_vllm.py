"""A real HTTP server on 127.0.0.1 that speaks vLLM's OpenAI-compatible protocol, for tests and benchmarks.

    with FakeVLLM(model="caprl", latency_s=0.0) as srv:
        srv.url                      # "http://127.0.0.1:PORT/v1"
        srv.fail_next("500", n=2)    # scripted failures, consumed by the next chat requests
        srv.requests                 # RequestRecord per request, for assertions

Endpoints as vLLM serves them: ``GET /v1/models``, ``GET /health``, ``POST /v1/chat/completions`` (with
vLLM's error bodies, new or old format), plus ``GET /fake/stats`` (test-only counters). Like vLLM it runs
at most ``max_num_seqs`` requests at once and queues the rest without limit (it never answers 429).

Also runnable as a process: ``python -m caprl_index.testing.fake_vllm --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

from caprl_index.testing import _fake_model as fm
from caprl_index.testing._fake_http import Handler, LoopbackServer, Reply

Failure = Literal["500", "503", "malformed", "empty", "drop", "hang", "length", "400", "context"]
FAILURES: tuple[str, ...] = ("500", "503", "malformed", "empty", "drop", "hang", "length", "400", "context")


@dataclass
class RequestRecord:
    """One chat request as the server saw it."""

    status: int  # 0 while in progress, and for a connection dropped unanswered
    outcome: str  # "ok", "length", or the failure it was answered with
    model: str | None = None
    prompt: str | None = None
    image_sha256: str | None = None
    image_size: tuple[int, int] | None = None  # (width, height)
    image_bytes: int = 0
    mime: str | None = None
    prompt_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False)


class FakeVLLM:
    """A vLLM stand-in serving ``model`` on a random (or given) loopback port, in a background thread."""

    def __init__(
        self,
        model: str = "caprl",
        *,
        port: int = 0,
        api_key: str | None = None,
        max_model_len: int = 32768,
        latency_s: float = 0.0,
        latency_per_token_s: float = 0.0,
        max_num_seqs: int = 256,
        error_format: Literal["new", "old"] = "new",
        caption_words: tuple[int, int] = (60, 200),
        self_praise: Literal["sometimes", "always", "never"] = "sometimes",
        hang_s: float = 3600.0,
    ) -> None:
        self.model = model
        self.api_key = api_key
        self.max_model_len = max_model_len
        self.latency_s = latency_s
        self.latency_per_token_s = latency_per_token_s
        self.error_format = error_format
        self.caption_words = caption_words
        self.self_praise = self_praise
        self.hang_s = hang_s
        self.dead = False  # accept connections but drop them unanswered, like a crashed backend
        self.requests: list[RequestRecord] = []
        self.max_num_seqs = max_num_seqs
        self._slots = threading.BoundedSemaphore(max_num_seqs)
        self._lock = threading.Lock()
        self._failures: deque[str] = deque()
        self._stopping = threading.Event()
        self._port = port
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self.in_flight = self.max_in_flight = self.running = self.max_running = 0
        self.busy_s = 0.0  # summed service time (slot-seconds) of answered requests
        self.slot_times: list[tuple[float, float]] = []  # (start, end) wall clock of each generation
        self.timeline: list[tuple[float, int, int]] = []  # (time, in flight, running) after each change

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL as clients configure it (``.../v1``)."""
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> FakeVLLM:
        """Listen (again, on the same port after :meth:`stop`) and serve in a daemon thread."""
        self._stopping.clear()
        self._server = LoopbackServer(("127.0.0.1", self._port), Handler, app=self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Die like a killed process: stop listening and cut every open connection."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.cut_connections()
            self._server = None

    def __enter__(self) -> FakeVLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting and inspection ------------------------------------------------------------
    def fail_next(self, failure: Failure, n: int = 1) -> None:
        """Answer the next ``n`` chat requests with ``failure`` instead of a caption."""
        if failure not in FAILURES:
            raise ValueError(f"unknown failure {failure!r}; choose one of {FAILURES}")
        with self._lock:
            self._failures.extend([failure] * n)

    def reset(self) -> None:
        """Forget logged requests, counters and pending failures."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self.max_in_flight = self.max_running = 0
            self.busy_s = 0.0
            self.slot_times.clear()
            self.timeline.clear()

    @property
    def chat_requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self.requests)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self.requests),
                "max_in_flight": self.max_in_flight,
                "max_running": self.max_running,
                "busy_s": self.busy_s,
                "max_num_seqs": self.max_num_seqs,
                "slot_times": list(self.slot_times),
                "timeline": list(self.timeline),
            }

    # --- request handling (called from handler threads) --------------------------------------
    def authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    def models_body(self) -> dict[str, Any]:
        card = {"id": self.model, "object": "model", "created": int(time.time()), "owned_by": "vllm"}
        card |= {"root": self.model, "parent": None, "max_model_len": self.max_model_len, "permission": []}
        return {"object": "list", "data": [card]}

    def error(self, status: int, message: str, kind: str) -> Reply:
        """vLLM's error body: ``{"error": {...}}`` since 2025, ``{"object": "error", ...}`` before."""
        inner = {"message": message, "type": kind, "param": None, "code": status}
        body = {"error": inner} if self.error_format == "new" else {"object": "error", **inner}
        return Reply(status, json.dumps(body).encode())

    def chat(self, raw: bytes) -> Reply:
        """Answer one chat completion; only generation holds a slot (vLLM validates and decodes first)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._mark()
        try:
            return self._chat(raw)
        finally:
            with self._lock:
                self.in_flight -= 1
                self._mark()

    def _mark(self) -> None:
        """Record the load after a change (caller holds the lock): benchmarks tell idle slots' causes."""
        self.timeline.append((time.time(), self.in_flight, self.running))

    @contextmanager
    def _slot(self) -> Iterator[None]:
        self._slots.acquire()
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self._mark()
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
                self._mark()
            self._slots.release()

    def _chat(self, raw: bytes) -> Reply:
        record = RequestRecord(status=0, outcome="ok")
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            self.requests.append(record)  # logged on arrival, so a hanging request is visible too
        record.outcome = failure or "ok"
        reply = self._answer(raw, record, failure)
        record.status = reply.status
        return reply

    def _answer(self, raw: bytes, record: RequestRecord, failure: str | None) -> Reply:
        try:
            body = json.loads(raw)
            image, text = _parse_messages(body)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return self.error(400, f"Invalid request: {exc}", "BadRequestError")
        _fill_record(record, body, image, text)
        if body.get("model") != self.model:
            return self.error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        if failure is not None and failure not in ("length", "empty"):
            return self._failure(failure)
        too_long = self._check_length(record)
        if too_long is not None:
            record.outcome = "context"
            return too_long
        return self._complete(body, image, record, failure)

    def _failure(self, failure: str) -> Reply:
        if failure in ("500", "503"):
            return self.error(int(failure), "EngineCore encountered an issue.", "InternalServerError")
        if failure == "400":
            return self.error(400, "Invalid value for 'top_p': must be in (0, 1].", "BadRequestError")
        if failure == "context":
            too_long = fm.length_error(self.max_model_len + 1, 0, self.max_model_len, self.error_format)
            return self.error(400, str(too_long), "BadRequestError")
        if failure == "malformed":
            return Reply(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
        if failure == "hang":
            self._stopping.wait(self.hang_s)
        return Reply(0, b"")  # "drop" (and a hang that ends): close without answering

    def _check_length(self, record: RequestRecord) -> Reply | None:
        message = fm.length_error(record.prompt_tokens, record.max_tokens or 0, self.max_model_len, self.error_format)
        return None if message is None else self.error(400, message, "BadRequestError")

    def _complete(
        self, body: dict[str, Any], image: fm.DecodedImage, record: RequestRecord, failure: str | None
    ) -> Reply:
        text = fm.caption_for(image, words=self.caption_words, self_praise=self.self_praise)
        max_tokens = record.max_tokens or self.max_model_len - record.prompt_tokens
        if failure == "length":
            max_tokens = min(max_tokens, max(1, len(text.split()) // 2))
        text, completion, truncated = fm.truncate_tokens(text, max_tokens)
        if failure == "empty":
            text, completion = "", 0
        service = self.latency_s + self.latency_per_token_s * completion
        with self._slot():
            started = time.time()
            if service > 0:
                self._stopping.wait(service)
            with self._lock:
                self.slot_times.append((started, time.time()))
        with self._lock:
            self.busy_s += service
        record.outcome = "length" if truncated else (failure or "ok")
        usage = (record.prompt_tokens, completion)
        return Reply(200, json.dumps(fm.completion_body(self.model, text, truncated, usage)).encode())


def _parse_messages(body: dict[str, Any]) -> tuple[fm.DecodedImage, str]:
    """Find the image (data URL) and the text of the user turn."""
    image: fm.DecodedImage | None = None
    texts: list[str] = []
    for message in body["messages"]:
        content = message["content"]
        parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "image_url":
                image = fm.decode_data_url(part["image_url"]["url"])
            elif part["type"] == "text":
                texts.append(part["text"])
    if image is None:
        raise ValueError("this fake CapRL server expects one image_url part")
    return image, "\n".join(texts)


def _fill_record(record: RequestRecord, body: dict[str, Any], image: fm.DecodedImage, text: str) -> None:
    record.body, record.model, record.prompt = body, body.get("model"), text
    record.image_sha256, record.image_size = image.sha256, (image.width, image.height)
    record.image_bytes, record.mime = len(image.data), image.mime
    record.prompt_tokens = fm.prompt_tokens(image, text)
    record.temperature, record.top_p = body.get("temperature"), body.get("top_p")
    record.repetition_penalty, record.max_tokens = body.get("repetition_penalty"), body.get("max_tokens")


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; prints ``ready <url>`` once listening."""
    parser = argparse.ArgumentParser(prog="python -m caprl_index.testing.fake_vllm", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="caprl", help="served model name")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--max-model-len", type=int, default=32768)
    parser.add_argument("--latency", type=float, default=0.0, help="fixed seconds per request")
    parser.add_argument("--per-token", type=float, default=0.0, help="extra seconds per output token")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="requests generated at once")
    parser.add_argument("--caption-words", type=int, nargs=2, default=(60, 200), metavar=("MIN", "MAX"))
    parser.add_argument("--old-errors", action="store_true", help="pre-2025 vLLM error bodies")
    args = parser.parse_args(argv)
    server = FakeVLLM(
        args.model,
        port=args.port,
        api_key=args.api_key,
        max_model_len=args.max_model_len,
        latency_s=args.latency,
        latency_per_token_s=args.per_token,
        max_num_seqs=args.max_num_seqs,
        caption_words=tuple(args.caption_words),
        error_format="old" if args.old_errors else "new",
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with server:
        print(f"ready {server.url}", flush=True)
        with suppress(KeyboardInterrupt):
            done.wait()


if __name__ == "__main__":
    main()
