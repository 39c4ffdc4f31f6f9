"""`caprl-index caption` and `doctor` against the loopback server's modes: family, kind, budget, tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caprl_index.cli import main
from caprl_index.testing import FakeVLLM
from caprl_index.testing._fake_model import text_tokens, visual_tokens


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def scan_4000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x4000 scan: 16,384 visual tokens on Qwen2.5-VL's processor if sent as it is."""
    from PIL import Image, ImageDraw

    path = tmp_path_factory.mktemp("scan") / "scan.png"
    img = Image.new("RGB", (4000, 4000), (250, 250, 245))
    ImageDraw.Draw(img).rectangle((400, 600, 3600, 3400), outline=(20, 20, 20), width=12)
    img.save(path, compress_level=1)
    return path


def test_caption_of_a_4000px_scan_fits_a_qwen25_vl_vllm_on_the_first_try(scan_4000: Path, capsys) -> None:
    with FakeVLLM(model="caprl", kind="vllm", family="qwen2.5-vl", max_model_len=8192) as srv:
        code, out, _ = run(capsys, "caption", str(scan_4000), "--vllm-url", srv.url, "--json")
        requests = srv.chat_requests
    info = json.loads(out)
    assert code == 0 and info["source"] == "vllm"
    (request,) = requests  # no context-length retry
    assert request.status == 200 and request.visual_tokens <= 1280
    assert request.prompt_tokens + 2048 <= 8192
    assert info["family"] == "qwen2.5-vl" and info["server_kinds"] == {srv.url: "vllm"}
    assert info["image_size"] == [4000, 4000] and info["sent_size"] == list(request.image_size or ())
    assert info["sent_size"] == [980, 980] and info["visual_tokens"] == request.visual_tokens == 1225
    assert info["prompt_tokens"] == request.prompt_tokens and info["image_tokens_budget"] == 1280


@pytest.mark.parametrize(
    ("kind", "family", "side"),
    [("llama.cpp", "qwen3-vl", 32), ("sglang", "qwen3-vl", 32), ("ollama", "qwen2.5-vl", 28)],
)
def test_caption_of_the_scan_on_other_servers(scan_4000: Path, capsys, kind: str, family: str, side: int) -> None:
    # A laptop's llama-server: one slot of 4,096 tokens (-c 4096 -np 1), CapRL 2.0 GGUF.
    with FakeVLLM(kind=kind, family=family, max_model_len=4096, max_num_seqs=1) as srv:  # type: ignore[arg-type]
        code, _, err = run(capsys, "caption", str(scan_4000), "--vllm-url", srv.url)
        (request,) = srv.chat_requests
    assert code == 0 and request.status == 200
    width, height = request.image_size or (0, 0)
    assert width % side == 0 and height % side == 0 and request.visual_tokens <= 1280
    assert f"on {kind}, {family}, budget 1,280 visual tokens: 4000x4000 sent as {width}x{height}" in err
    assert f"= {request.visual_tokens:,} visual tokens" in err


def _checks(out: str) -> dict[str, dict[str, str]]:
    return {c["name"].split()[0]: c for c in json.loads(out)}


def test_doctor_reports_kind_family_budget_and_what_the_test_page_costs(capsys) -> None:
    with FakeVLLM(kind="llama.cpp", family="qwen3-vl", max_model_len=8192, max_num_seqs=2) as srv:
        code, out, _ = run(capsys, "doctor", "--vllm-url", srv.url, "--json")
        (measured,) = srv.chat_requests
    checks = _checks(out)
    assert code == 0
    server = checks["llama.cpp"]
    assert server["state"] == "ok" and "context 8,192 tokens" in server["detail"]
    assert "2 request(s) at once" in server["detail"] and "owned_by 'llamacpp'" in server["detail"]
    captions = checks["captions"]
    assert captions["detail"].startswith("qwen3-vl (named by /models/CapRL-Qwen3VL-4B-Q4_K_M.gguf")
    assert "budget 1,280 visual tokens = up to 1,310,720 px" in captions["detail"]
    # The family differs from what the settings imply: the warning says which setting to add.
    assert captions["state"] == "warn" and "CAPRL_MODEL_FAMILY=qwen3-vl" in captions["detail"]
    test_image = checks["test"]
    counted = visual_tokens(*(measured.image_size or (0, 0)), "llama.cpp", "qwen3-vl") + text_tokens(
        "Please describe this image in detail."
    )
    assert measured.max_tokens == 1 and f"counted {counted:,} prompt tokens" in test_image["detail"]
    assert f"({measured.visual_tokens:,} visual tokens predicted" in test_image["detail"]


def test_doctor_explains_the_old_max_pixels_setting(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPRL_MAX_PIXELS", "501760")
    with FakeVLLM() as srv:
        code, out, _ = run(capsys, "doctor", "--vllm-url", srv.url, "--json")
    detail = _checks(out)["captions"]["detail"]
    assert code == 0 and "budget 640 visual tokens" in detail
    assert "CAPRL_MAX_PIXELS=501,760 (read as 640 tokens at 28x28 px): set CAPRL_IMAGE_TOKENS instead" in detail


def test_doctor_fails_a_required_llama_server_without_mmproj(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPRL_CAPTIONER", "vllm")
    with FakeVLLM(kind="llama.cpp", vision=False) as srv:
        code, out, _ = run(capsys, "doctor", "--vllm-url", srv.url, "--json")
    check = _checks(out)["vLLM"]
    assert code == 2 and check["state"] == "fail" and "--mmproj" in check["detail"]
