"""A real HTTP server on 127.0.0.1 that speaks the OpenAI protocol as a caption server does, for tests.

    with FakeVLLM(model="caprl", latency_s=0.0) as srv:      # vLLM serving CapRL-3B (Qwen2.5-VL)
        srv.url                      # "http://127.0.0.1:PORT/v1"
        srv.fail_next("500", n=2)    # scripted failures, consumed by the next chat requests
        srv.requests                 # RequestRecord per request, for assertions

    FakeVLLM(kind="llama.cpp", family="qwen3-vl", max_model_len=8192, max_num_seqs=2)   # llama-server, 2 slots

``kind`` picks the server whose quirks it imitates (``vllm``, ``sglang``, ``llama.cpp``, ``ollama``,
``generic``; see :mod:`caprl_index.testing._fake_dialects`): model listing, its own endpoints (``/props``,
``/api/show``, ...), error bodies and wording, context checks, sampling field names, slots. ``family``
(``qwen2.5-vl``, ``qwen3-vl``, ``generic``) sets how it counts an image's visual tokens. It runs at most
``max_num_seqs`` requests at once and queues the rest (Ollama refuses past ``max_queue``).

Also runnable as a process: ``python -m caprl_index.testing.fake_vllm --port 8000 [--kind llama.cpp]``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

from caprl_index.testing import _fake_dialects as fd
from caprl_index.testing import _fake_model as fm
from caprl_index.testing._fake_http import Handler, LoopbackServer, Reply
from caprl_index.testing._fake_request import RequestRecord, fill_record, parse_messages

__all__ = ["FAILURES", "FakeVLLM", "RequestRecord", "main"]

Kind = Literal["vllm", "sglang", "llama.cpp", "ollama", "generic"]
Family = Literal["qwen2.5-vl", "qwen3-vl", "generic"]
Failure = Literal["500", "503", "malformed", "empty", "drop", "hang", "length", "400", "context", "loading", "busy"]
FAILURES: tuple[str, ...] = get_args(Failure)
_SLOTS = {"llama.cpp": 4, "ollama": 1}  # llama-server --parallel auto; OLLAMA_NUM_PARALLEL default
# What each kind reports as the model's path (vLLM's root, SGLang's model_path, llama.cpp's GGUF).
_PATHS = {
    "qwen2.5-vl": "internlm/CapRL-3B",
    "qwen3-vl": "internlm/CapRL-Qwen3VL-4B",
    "generic": "OpenGVLab/InternVL3-2B",
}
_GGUFS = {"qwen2.5-vl": "CapRL-3B.Q4_K_M.gguf", "qwen3-vl": "CapRL-Qwen3VL-4B-Q4_K_M.gguf", "generic": "InternVL3.gguf"}


class FakeVLLM:
    """A caption server stand-in serving ``model`` on a random (or given) loopback port, in a background thread."""

    def __init__(
        self,
        model: str = "caprl",
        *,
        kind: Kind = "vllm",
        family: Family = "qwen2.5-vl",
        model_path: str | None = None,
        port: int = 0,
        api_key: str | None = None,
        max_model_len: int = 32768,
        advertise_context: bool = True,
        latency_s: float = 0.0,
        latency_per_token_s: float = 0.0,
        max_num_seqs: int | None = None,
        max_queue: int = 512,
        vision: bool = True,
        error_format: Literal["new", "old"] = "new",
        context_error: Literal["decoder-prompt", "input-length", "max-context"] | None = None,
        modelfile: str = "num_ctx {ctx}\ntop_k 0",
        caption_words: tuple[int, int] = (60, 200),
        self_praise: Literal["sometimes", "always", "never"] = "sometimes",
        hang_s: float = 3600.0,
    ) -> None:
        self.model, self.kind, self.family = model, kind, family
        self.model_path = model_path or (f"/models/{_GGUFS[family]}" if kind == "llama.cpp" else _PATHS[family])
        self.api_key = api_key
        self.max_model_len, self.advertise_context = max_model_len, advertise_context
        self.latency_s, self.latency_per_token_s = latency_s, latency_per_token_s
        self.vision, self.modelfile, self.max_queue = vision, modelfile, max_queue
        self.error_format, self.context_error = error_format, context_error
        self.caption_words, self.self_praise, self.hang_s = caption_words, self_praise, hang_s
        self.dead = False  # accept connections but drop them unanswered, like a crashed backend
        self.requests: list[RequestRecord] = []
        self.max_num_seqs = max_num_seqs or _SLOTS.get(kind, 256)
        self._slots = threading.BoundedSemaphore(self.max_num_seqs)
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
        return fd.models_body(self)

    def get(self, path: str) -> Reply | None:
        if path == "/v1/models":
            return fd.json_reply(200, self.models_body())
        return fd.extra_get(self, path)

    def post(self, path: str, raw: bytes) -> Reply | None:
        return self.chat(raw) if path == "/v1/chat/completions" else fd.extra_post(self, path, raw)

    def error(self, status: int, message: str, kind: str) -> Reply:
        """The server kind's error body (vLLM: ``{"error": {...}}`` since 2025, ``{"object": "error"}`` before)."""
        return fd.error(self, status, message, kind)

    def chat(self, raw: bytes) -> Reply:
        """Answer one chat completion; only generation holds a slot (servers validate and decode first)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._mark()
            queued_over = self.in_flight - self.max_num_seqs > self.max_queue
        try:
            if self.kind == "ollama" and queued_over:
                return fd.busy(self, "busy")
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
        record.error = reply.body.decode("utf-8", "replace") if reply.status >= 400 else None
        return reply

    def _answer(self, raw: bytes, record: RequestRecord, failure: str | None) -> Reply:
        try:
            body = json.loads(raw)
            if not self.vision and "image_url" in raw.decode("utf-8", "replace"):
                return fd.no_vision(self)
            if "image_url" not in raw.decode("utf-8", "replace"):
                return self._text_answer(body, record)
            image, text = parse_messages(body)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return self.error(400, f"Invalid request: {exc}", "BadRequestError")
        fill_record(record, body, image, text, self.kind, self.family)
        refusal = fd.unknown_model(self, body.get("model")) or fd.refused_fields(self, body)
        if refusal is not None:
            return refusal
        if failure is not None and failure not in ("length", "empty"):
            return self._failure(failure)
        too_long, cap = fd.context_limit(self, record, fm.text_tokens(text))
        if too_long is not None:
            record.outcome = "context"
            return too_long
        return self._complete(image, record, failure, cap)

    def _text_answer(self, body: dict[str, Any], record: RequestRecord) -> Reply:
        """A chat without an image (a RAG answer): a vision model's server answers those too. The reply names
        how much context it was given, so tests can tell what reached the model."""
        prompt = "\n".join(
            m["content"] if isinstance(m["content"], str) else " ".join(p.get("text", "") for p in m["content"])
            for m in body["messages"]
        )
        record.body, record.model, record.prompt = body, body.get("model"), prompt
        refusal = fd.unknown_model(self, body.get("model"))
        if refusal is not None:
            return refusal
        text = f"An answer from {body.get('model')} to a prompt of {len(prompt.split())} words."
        usage = (fm.text_tokens(prompt), len(text.split()))
        return Reply(200, json.dumps(fm.completion_body(fd.listed_id(self), text, False, usage)).encode())

    def _failure(self, failure: str) -> Reply:
        if failure in ("500", "503"):
            return self.error(int(failure), "EngineCore encountered an issue.", "InternalServerError")
        if failure in ("loading", "busy"):
            return fd.busy(self, failure)
        if failure == "400":
            return self.error(400, "Invalid value for 'top_p': must be in (0, 1].", "BadRequestError")
        if failure == "context":
            return fd.overflow(self, self.max_model_len + 1)
        if failure == "malformed":
            return Reply(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
        if failure == "hang":
            self._stopping.wait(self.hang_s)
        return Reply(0, b"")  # "drop" (and a hang that ends): close without answering

    def _complete(self, image: fm.DecodedImage, record: RequestRecord, failure: str | None, cap: int | None) -> Reply:
        text = fm.caption_for(image, words=self.caption_words, self_praise=self.self_praise)
        max_tokens = min(record.max_tokens or self.max_model_len - record.prompt_tokens, cap or 2**31)
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
        answer = fm.completion_body(fd.listed_id(self), text, truncated, (record.prompt_tokens, completion))
        return Reply(200, json.dumps(answer | fd.completion_extras(self)).encode())


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; prints ``ready <url>`` once listening."""
    from caprl_index.testing._fake_cli import serve

    serve(argv)


if __name__ == "__main__":
    main()
