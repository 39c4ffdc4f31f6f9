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


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("kind", "owner", "listed", "extra"),
    [
        ("vllm", "vllm", "caprl", "/version"),
        ("sglang", "sglang", "caprl", "/get_model_info"),
        ("llama.cpp", "llamacpp", "caprl", "/props"),
        ("ollama", "library", "caprl:latest", "/api/version"),
        ("generic", "organization-owner", "caprl", None),
    ],
)
def test_each_kind_lists_its_model_and_answers_its_own_endpoints(
    kind: str, owner: str, listed: str, extra: str | None
) -> None:
    with FakeVLLM(kind=kind, family="qwen3-vl", max_model_len=8192, max_num_seqs=2) as srv:  # type: ignore[arg-type]
        root = f"http://127.0.0.1:{srv.port}"
        _, models = _get(srv.url + "/models")
        answers = {path: _get(root + path) for path in ("/version", "/get_model_info", "/props", "/api/version")}
        show = _post(root + "/api/show", {"model": "caprl"})
    (card,) = models["data"]
    assert (card["id"], card["owned_by"]) == (listed, owner)
    assert [p for p, (status, _) in answers.items() if status == 200] == ([extra] if extra else [])
    if kind == "vllm":
        assert (card["root"], card["max_model_len"]) == ("internlm/CapRL-Qwen3VL-4B", 8192)
    if kind == "sglang":
        assert card["root"] == "caprl" and answers["/get_model_info"][1]["model_path"] == "internlm/CapRL-Qwen3VL-4B"
    if kind == "llama.cpp":
        props = answers["/props"][1]
        assert (props["total_slots"], props["default_generation_settings"]["n_ctx"]) == (2, 8192)
        assert props["model_path"].endswith("CapRL-Qwen3VL-4B-Q4_K_M.gguf") and props["modalities"]["vision"]
    if kind == "ollama":
        status, body = show
        assert status == 200 and body["model_info"]["general.architecture"] == "qwen3vl"
        assert "vision" in body["capabilities"] and "num_ctx 8192" in body["parameters"]
    else:
        assert show[0] == 404


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        ("sglang", {"object", "message", "type", "param", "code"}),
        ("llama.cpp", {"error"}),
        ("ollama", {"error"}),
        ("generic", {"error"}),
    ],
)
def test_each_kind_refuses_an_overflowing_image_in_its_own_words(kind: str, shape: set[str]) -> None:
    with FakeVLLM(kind=kind, max_model_len=400) as srv:  # type: ignore[arg-type]
        status, body = _chat(srv, image_bytes(700, 700), max_tokens=16)  # 625 visual tokens
    assert status == 400 and set(body) == shape
    if kind == "llama.cpp":
        assert body["error"] == {
            "code": 400,
            "message": "request (651 tokens) exceeds the available context size (400 tokens), try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 651,
            "n_ctx": 400,
        }
    if kind == "ollama":  # llama-server's body, as a string, inside Ollama's OpenAI error
        assert json.loads(body["error"]["message"])["error"]["type"] == "exceed_context_size_error"
        assert body["error"]["type"] == "invalid_request_error"
    if kind == "sglang":
        assert body["message"] == "The input (651 tokens) is longer than the model's context length (400 tokens)."


def test_kind_specific_refusals() -> None:
    with FakeVLLM(kind="llama.cpp", vision=False) as blind, FakeVLLM(kind="ollama") as ollama:
        no_mmproj = _chat(blind, image_bytes(), max_tokens=16)
        unknown = _chat(ollama, image_bytes(), model="gpt-4o", max_tokens=16)
        ollama.fail_next("busy")
        busy = _chat(ollama, image_bytes(), max_tokens=16)
    with FakeVLLM(kind="generic") as strict, FakeVLLM(kind="sglang") as sglang:
        extra = _chat(strict, image_bytes(), max_tokens=16, repetition_penalty=1.0)
        any_name = _chat(sglang, image_bytes(), model="whatever", max_tokens=16)
    assert no_mmproj[0] == 500 and "provide the mmproj" in no_mmproj[1]["error"]["message"]
    assert unknown == (
        404,
        {"error": {"message": "model 'gpt-4o' not found", "type": "not_found_error", "param": None, "code": None}},
    )
    assert busy[0] == 503 and "server busy" in busy[1]["error"]["message"]
    assert extra[0] == 400 and "repetition_penalty" in extra[1]["error"]["message"]
    assert any_name[0] == 200
