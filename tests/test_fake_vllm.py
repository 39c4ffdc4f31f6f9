"""The loopback vLLM stand-in speaks the protocol as vLLM does (raw HTTP, no client library)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from caprl_index.testing import FakeVLLM
from caprl_index.testing.figures import image_bytes


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _chat(srv: FakeVLLM, image: bytes, **params: Any) -> tuple[int, Any]:
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    body = {
        "model": params.pop("model", "caprl"),
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "Please describe this image in detail."},
                ],
            }
        ],
        **params,
    }
    request = urllib.request.Request(
        srv.url + "/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_models_health_and_api_key() -> None:
    with FakeVLLM(model="caprl", api_key="sekret", max_model_len=8192) as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}/v1"
        assert _get(f"http://127.0.0.1:{srv.port}/health") == (200, None)
        assert _get(srv.url + "/models") == (401, {"error": "Unauthorized"})
        status, body = _get(srv.url + "/models", key="sekret")
    assert status == 200 and body["object"] == "list"
    card = body["data"][0]
    assert (card["id"], card["object"], card["owned_by"], card["max_model_len"]) == ("caprl", "model", "vllm", 8192)


def test_caption_depends_on_the_image_and_usage_is_reported() -> None:
    with FakeVLLM(self_praise="never") as srv:
        answers = [_chat(srv, image_bytes(90, 60, seed=s), max_tokens=2048)[1] for s in (1, 2)]
        records = srv.chat_requests
    for answer, record in zip(answers, records, strict=True):
        assert answer["object"] == "chat.completion" and answer["model"] == "caprl"
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert f"image id {record.image_sha256[:12]}" in choice["message"]["content"]
        assert "90x60 pixels" in choice["message"]["content"]
        usage = answer["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens"] == record.prompt_tokens > 0
    assert answers[0]["choices"][0]["message"]["content"] != answers[1]["choices"][0]["message"]["content"]


def test_length_finish_reason_when_max_tokens_is_reached() -> None:
    with FakeVLLM() as srv:
        status, answer = _chat(srv, image_bytes(), max_tokens=10)
    assert status == 200
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 10


@pytest.mark.parametrize(
    ("fmt", "style", "start"),
    [
        ("new", None, "The decoder prompt (length 651) is longer than the maximum model length of 400."),
        ("new", "input-length", "Input length (651) exceeds model's maximum context length (400)."),
        ("old", None, "This model's maximum context length is 400 tokens. However, you requested 651 tokens"),
    ],
)
def test_context_overflow_answers_vllm_error_body(fmt: str, style: str | None, start: str) -> None:
    # 700x700 px = 625 visual tokens + 26 of text: over a 400-token context.
    with FakeVLLM(max_model_len=400, error_format=fmt, context_error=style) as srv:  # type: ignore[arg-type]
        status, body = _chat(srv, image_bytes(700, 700), max_tokens=16)
    assert status == 400
    error = body["error"] if fmt == "new" else body
    if fmt == "old":
        assert body["object"] == "error"
    assert (error["type"], error["code"], error["param"]) == ("BadRequestError", 400, None)
    assert error["message"].startswith(start)


def test_vllm_max_tokens_past_the_context_is_refused_on_the_text_and_truncated_on_the_image() -> None:
    # The frontend counts the text prompt (26 tokens) against max_tokens; the image is expanded later, so
    # an image that leaves no room for max_tokens is not refused: generation stops at the context.
    with FakeVLLM(max_model_len=700, caption_words=(400, 400)) as srv:
        refused, body = _chat(srv, image_bytes(64, 48), max_tokens=690)
        status, answer = _chat(srv, image_bytes(600, 600), max_tokens=600)
    assert refused == 400 and "'max_tokens' or 'max_completion_tokens' is too large: 690" in body["error"]["message"]
    assert status == 200 and answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"] == 700


def test_scripted_failures_then_recovery() -> None:
    with FakeVLLM() as srv:
        srv.fail_next("500")
        srv.fail_next("400")
        assert _chat(srv, image_bytes(), max_tokens=64)[0] == 500
        assert _chat(srv, image_bytes(), max_tokens=64)[0] == 400
        assert _chat(srv, image_bytes(), max_tokens=1000)[0] == 200
        assert [r.outcome for r in srv.chat_requests] == ["500", "400", "ok"]
        assert srv.chat_requests[0].temperature is None  # the log keeps what was (not) sent
        with pytest.raises(ValueError, match="unknown failure"):
            srv.fail_next("teapot")  # type: ignore[arg-type]


def test_stop_refuses_connections_and_start_reuses_the_port() -> None:
    srv = FakeVLLM().start()
    port = srv.port
    srv.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    srv.start()
    try:
        assert srv.port == port
        assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
    finally:
        srv.stop()


def test_slots_bound_generation_and_queue_the_rest() -> None:
    with FakeVLLM(max_num_seqs=2, latency_s=0.15) as srv:
        threads = [
            threading.Thread(target=_chat, args=(srv, image_bytes(seed=i)), kwargs={"max_tokens": 64}) for i in range(6)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        stats = srv.stats()
    assert stats["max_running"] == 2
    assert stats["max_in_flight"] > 2  # queued beyond the slots, never refused
    assert elapsed >= 3 * 0.15 * 0.95  # 6 requests through 2 slots: 3 rounds
    assert stats["busy_s"] == pytest.approx(6 * 0.15)


def test_runs_as_a_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "caprl_index.testing.fake_vllm", "--port", "0", "--model", "m1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "ready"
        status, body = _get(line[1] + "/models")
        assert status == 200 and body["data"][0]["id"] == "m1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
