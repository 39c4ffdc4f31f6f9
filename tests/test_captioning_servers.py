"""The captioner against every server kind the loopback server imitates: vLLM, SGLang, llama.cpp, Ollama, generic.

Only configuration changes between them (the URL, at most CAPRL_MODEL_FAMILY where a server cannot say);
each kind's quirks (model listing, sampling names, slots, error bodies, context rules) are the server's.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from caprl_index.captioning import FAMILIES, VLLMCaptioner, open_captioner, probe_servers, prompt_version
from caprl_index.config import Settings
from caprl_index.models import Caption, Figure
from caprl_index.testing import FakeVLLM
from caprl_index.testing.figures import figures, image_bytes, make_figure

KINDS = ["vllm", "sglang", "llama.cpp", "ollama", "generic"]
TOKEN_SIDE = {"qwen2.5-vl": 28, "qwen3-vl": 32}  # patch 14 x merge 2, patch 16 x merge 2
SAMPLING = {
    "vllm": {"repetition_penalty": 1.0},
    "sglang": {"repetition_penalty": 1.0},
    "llama.cpp": {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0},
    "ollama": {},
    "generic": {},
}


def _settings(tmp_path: Path, *urls: str, **values: Any) -> Settings:
    values.setdefault("max_retries", 3)
    return Settings(vllm_url=list(urls), qdrant_path=tmp_path / "index" / "qdrant", **values)


async def _run(settings: Settings, figs: list[Figure]) -> tuple[list[Caption], Any, list[str]]:
    warnings: list[str] = []
    captioner = await open_captioner(settings, warn=warnings.append, backoff_s=0.01)
    try:
        captions = await asyncio.gather(*(captioner.caption(f) for f in figs))
    finally:
        await captioner.aclose()
    return list(captions), captioner, warnings


@functools.cache
def _scan_bytes() -> bytes:
    return image_bytes(2800, 2100, seed=11)  # a 5.9 Mpx scan: 7,500 Qwen2.5-VL tokens unless resized


def _scan() -> Figure:
    return make_figure(_scan_bytes(), index=9)


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_server_kind_captions_with_configuration_only(tmp_path: Path, kind: str, family: str) -> None:
    # A generic server reports no model path: it needs the family said (here through the served name).
    model = "CapRL-Qwen3VL-4B" if kind == "generic" and family == "qwen3-vl" else "caprl"
    with FakeVLLM(model, kind=kind, family=family, max_model_len=8192) as srv:  # type: ignore[arg-type]
        settings = _settings(tmp_path, srv.url, vllm_model=model)
        captions, captioner, warnings = asyncio.run(_run(settings, [*figures(2), _scan()]))
        records = srv.chat_requests
    assert [c.source for c in captions] == ["vllm"] * 3 and all("image id" in c.text for c in captions)
    assert isinstance(captioner, VLLMCaptioner)
    probe = captioner.setup.probes[0]
    assert (probe.kind, captioner.setup.family.name) == (kind, family)
    assert captions[0].prompt_version == prompt_version(settings, FAMILIES[family])
    # One request per figure: the scan was fitted beforehand, no context-length retry.
    assert len(records) == 3 and all(r.status == 200 for r in records)
    scan = max(records, key=lambda r: r.visual_tokens)
    side = TOKEN_SIDE[family]
    width, height = scan.image_size or (0, 0)
    assert width % side == 0 and height % side == 0 and scan.visual_tokens <= 1280
    sampled = {k: v for k, v in scan.body.items() if k in ("repetition_penalty", "repeat_penalty", "top_k", "min_p")}
    assert sampled == SAMPLING[kind]
    assert (scan.temperature, scan.top_p, scan.max_tokens) == (1.0, 1.0, 2048)
    implied_qwen25 = model == "caprl"
    assert bool(warnings) == (family == "qwen3-vl" and implied_qwen25)
    if warnings:
        assert "CAPRL_MODEL_FAMILY=qwen3-vl" in warnings[0]


def test_a_generic_server_needs_the_family_said_and_then_fits_it(tmp_path: Path) -> None:
    with FakeVLLM(kind="generic", family="qwen3-vl") as srv:
        assumed = asyncio.run(probe_servers(_settings(tmp_path, srv.url)))[0]
        said = _settings(tmp_path, srv.url, model_family="qwen3-vl")
        captions, captioner, warnings = asyncio.run(_run(said, [_scan()]))
        (record,) = srv.chat_requests
    assert assumed.ok and assumed.family is None
    assert captioner.setup.family.name == "qwen3-vl" and not warnings
    assert record.image_size is not None and record.image_size[0] % 32 == 0 and record.visual_tokens <= 1280
    assert captions[0].source == "vllm"


@pytest.mark.parametrize("kind", ["vllm", "sglang", "llama.cpp"])
def test_a_small_context_lowers_the_budget_instead_of_failing(tmp_path: Path, kind: str) -> None:
    with FakeVLLM(kind=kind, max_model_len=3000) as srv:  # type: ignore[arg-type]
        captions, captioner, warnings = asyncio.run(_run(_settings(tmp_path, srv.url), [_scan()]))
        (record,) = srv.chat_requests
    room = 3000 - 2048 - 64
    assert captioner.setup.budget.tokens == room and record.status == 200
    assert record.visual_tokens <= room and record.prompt_tokens + 2048 <= 3000
    assert captions[0].source == "vllm" and not captions[0].truncated
    assert len(warnings) == 1 and "3,000 tokens" in warnings[0] and "to 3,392" in warnings[0]


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("sglang", "Requested token count exceeds the model's maximum context length"),
        ("llama.cpp", "exceeds the available context size"),
        ("ollama", "exceed_context_size_error"),  # llama-server's whole body, inside Ollama's error
        ("generic", "maximum context length"),
    ],
)
def test_each_servers_context_refusal_gets_one_smaller_try(tmp_path: Path, kind: str, words: str) -> None:
    # The server keeps its context to itself, and the budget allows 3,000 tokens: the 400 must be read.
    # llama.cpp and Ollama refuse a prompt the context cannot hold, SGLang and OpenAI prompt + max_tokens.
    context = 1500 + 2048 * (kind in ("sglang", "generic"))
    server = FakeVLLM(kind=kind, max_model_len=context, advertise_context=False, modelfile="top_k 0")  # type: ignore[arg-type]
    with server as srv:
        fig = make_figure(image_bytes(1400, 1400, seed=5))  # 2,500 visual tokens
        captions, _, _ = asyncio.run(_run(_settings(tmp_path, srv.url, image_tokens=3000), [fig]))
        first, second = srv.chat_requests
    assert first.status == 400 and words in (first.error or "")
    assert second.status == 200 and second.visual_tokens <= first.visual_tokens // 2
    assert captions[0].source == "vllm"


def test_llama_cpp_slots_bound_the_requests_per_url(tmp_path: Path) -> None:
    with (
        FakeVLLM(kind="llama.cpp", max_num_seqs=1, latency_s=0.05) as one,
        FakeVLLM(kind="llama.cpp", max_num_seqs=3, latency_s=0.05) as three,
    ):
        captions, captioner, _ = asyncio.run(_run(_settings(tmp_path, one.url, three.url), figures(16)))
        stats = one.stats(), three.stats()
    assert all(c.source == "vllm" for c in captions)
    assert captioner.setup.capacities == {one.url: 1, three.url: 3}
    # Never more in flight than a server runs: the rest wait in the client, where another URL can take them.
    assert (stats[0]["max_in_flight"], stats[1]["max_in_flight"]) == (1, 3)
    assert stats[1]["requests"] > 2 * stats[0]["requests"]


def test_ollama_runs_one_at_a_time_unless_told_and_a_busy_503_is_retried(tmp_path: Path) -> None:
    with FakeVLLM(kind="ollama", latency_s=0.02) as srv:
        srv.fail_next("busy", 2)
        captions, _, _ = asyncio.run(_run(_settings(tmp_path, srv.url), figures(4)))
        assert srv.stats()["max_in_flight"] == 1
        outcomes = [r.outcome for r in srv.chat_requests]
        srv.reset()
        asyncio.run(_run(_settings(tmp_path, srv.url, server_concurrency=3), figures(6, start=10)))
        assert srv.stats()["max_in_flight"] == 3
    assert outcomes[:2] == ["busy", "busy"] and all(c.source == "vllm" for c in captions)


def test_llama_cpp_loading_503_is_retried(tmp_path: Path) -> None:
    with FakeVLLM(kind="llama.cpp") as srv:
        srv.fail_next("loading", 2)
        captions, _, _ = asyncio.run(_run(_settings(tmp_path, srv.url), figures(1)))
        assert [r.status for r in srv.chat_requests] == [503, 503, 200]
    assert captions[0].source == "vllm"


def test_llama_server_without_mmproj_is_refused_at_the_probe_with_the_fix(tmp_path: Path) -> None:
    with FakeVLLM(kind="llama.cpp", vision=False) as srv:
        (probe,) = asyncio.run(probe_servers(_settings(tmp_path, srv.url)))
        captions, _, warnings = asyncio.run(_run(_settings(tmp_path, srv.url), figures(1)))
        # Told it is another kind, the client only learns it from the 500, and does not retry it.
        forced = _settings(tmp_path, srv.url, server_kind="generic")
        blind, _, _ = asyncio.run(_run(forced, figures(1)))
        assert [r.status for r in srv.chat_requests] == [500]
    assert not probe.ok and "--mmproj" in (probe.error or "")
    assert captions[0].source == "ocr" and "--mmproj" in warnings[0]
    assert blind[0].source == "ocr" and "image input is not supported" in (blind[0].error or "")


def test_ollama_names_tags_and_modelfile(tmp_path: Path) -> None:
    with FakeVLLM(kind="ollama", family="qwen3-vl", max_model_len=16384, modelfile="num_ctx {ctx}") as srv:
        (probe,) = asyncio.run(probe_servers(_settings(tmp_path, srv.url, model_family="qwen3-vl")))
        _, _, warnings = asyncio.run(_run(_settings(tmp_path, srv.url, model_family="qwen3-vl"), figures(1)))
    assert probe.ok and probe.models == ["caprl:latest"]  # listed with its tag, asked for without it
    assert (probe.kind, probe.context, probe.slots) == ("ollama", 16384, None)
    assert "GET /api/version" in probe.kind_source
    assert len(warnings) == 1 and "PARAMETER top_k 0" in warnings[0]


def test_llama_server_listing_its_gguf_path_serves_the_configured_name(tmp_path: Path) -> None:
    gguf = "/models/CapRL-Qwen3VL-2B-Q8_0.gguf"
    with FakeVLLM(gguf, kind="llama.cpp", family="qwen3-vl", max_model_len=4096, max_num_seqs=1) as srv:
        (probe,) = asyncio.run(probe_servers(_settings(tmp_path, srv.url, model_family="qwen3-vl")))
    assert probe.ok and probe.models == [gguf] and probe.family == "qwen3-vl"
    assert (probe.context, probe.slots, probe.vision) == (4096, 1, True)


def test_a_model_gone_after_the_probe_is_not_retried(tmp_path: Path) -> None:
    with FakeVLLM() as srv:

        async def run() -> list[Caption]:
            captioner = await open_captioner(_settings(tmp_path, srv.url), warn=lambda _: None, backoff_s=0.01)
            srv.model = "another"  # restarted with another --served-model-name
            captions = [await captioner.caption(f) for f in figures(1)]
            await captioner.aclose()
            return captions

        (caption,) = asyncio.run(run())
        assert len(srv.chat_requests) == 1
    assert (
        caption.source == "ocr" and "HTTP 404" in (caption.error or "") and "CAPRL_VLLM_MODEL" in (caption.error or "")
    )


def test_generic_servers_get_only_openai_fields(tmp_path: Path) -> None:
    with FakeVLLM(kind="generic") as srv:
        good, _, _ = asyncio.run(_run(_settings(tmp_path, srv.url), figures(1)))
        forced, _, _ = asyncio.run(_run(_settings(tmp_path, srv.url, server_kind="vllm"), figures(1, start=3)))
        statuses = [r.status for r in srv.chat_requests]
    assert good[0].source == "vllm"
    # Told it is vLLM, the client sends repetition_penalty: a plain 400, never retried.
    assert statuses == [200, 400] and "repetition_penalty" in (forced[0].error or "")


def test_no_server_is_told_from_one_tcp_connection_without_importing_the_sdk(tmp_path: Path) -> None:
    """The laptop case (no caption server): the probe answers with the reason, and neither the OpenAI SDK
    nor its TLS context is loaded for it (~0.5 s of a cold ingest)."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import free_port

    port = free_port()
    code = (
        "import asyncio, json, sys\n"
        "from caprl_index.captioning import probe_servers\n"
        "from caprl_index.config import Settings\n"
        f"urls = ['http://127.0.0.1:{port}/v1', 'http://no-such-host.invalid/v1']\n"
        f"probes = asyncio.run(probe_servers(Settings(vllm_url=urls, qdrant_path={str(tmp_path)!r})))\n"
        "print(json.dumps([[p.ok, p.error] for p in probes] + ['openai' in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    (ok1, refused), (ok2, unknown), sdk = json.loads(out.stdout)
    assert not ok1 and f"127.0.0.1:{port}" in refused and "connection refused" in refused
    assert not ok2 and "cannot resolve host 'no-such-host.invalid'" in unknown
    assert sdk is False


def test_the_tcp_check_leaves_listening_servers_and_proxies_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from caprl_index.captioning.discovery import unreachable
    from tests.conftest import free_port

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    closed = f"http://127.0.0.1:{free_port()}/v1"
    assert "connection refused" in (asyncio.run(unreachable(closed)) or "")
    with socket.socket() as listening:  # accepts, whatever it speaks: what it serves is the SDK's question
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert asyncio.run(unreachable(f"http://127.0.0.1:{listening.getsockname()[1]}/v1")) is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")  # the proxy may reach what we cannot
    assert asyncio.run(unreachable(closed)) is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert "connection refused" in (asyncio.run(unreachable(closed)) or "")
