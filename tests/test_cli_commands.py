"""`caption`, `doctor`, `delete` and `eval` through the CLI, against the loopback vLLM server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from caprl_index.cli import main
from caprl_index.testing.figures import image_bytes
from tests.conftest import EXAMPLES


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_caption_one_image_reports_model_latency_and_tokens(tmp_path: Path, fake_vllm, capsys) -> None:
    image = tmp_path / "chart.png"
    image.write_bytes(image_bytes(320, 200, seed=3))
    code, out, _ = run(capsys, "caption", str(image), "--vllm-url", fake_vllm.url, "--json")
    info = json.loads(out)
    assert code == 0 and info["source"] == "vllm" and info["model"] == "caprl"
    assert info["prompt_tokens"] > 0 and info["completion_tokens"] > 0 and info["latency_s"] >= 0
    assert info["caption"].strip()
    request = fake_vllm.chat_requests[-1]
    assert request.prompt == "Please describe this image in detail." and request.image_size == (320, 200)


def test_caption_with_server_down_is_an_error_naming_the_url(tmp_path: Path, capsys) -> None:
    image = tmp_path / "chart.png"
    image.write_bytes(image_bytes())
    code, _, err = run(capsys, "caption", str(image))
    assert code == 2 and "127.0.0.1" in err


def test_doctor_reports_each_component(fake_vllm, capsys) -> None:
    code, out, _ = run(capsys, "doctor", "--vllm-url", fake_vllm.url, "--json")
    checks = {c["name"].split()[0]: c for c in json.loads(out)}
    assert code == 0
    assert checks["vLLM"]["state"] == "ok" and "caprl" in checks["vLLM"]["detail"]
    assert checks["Qdrant"]["state"] == "ok" and checks["embedding"]["state"] == "ok"
    assert "384-d" in checks["embedding"]["detail"] and "on ONNX Runtime" in checks["embedding"]["detail"]


def test_doctor_fails_when_vllm_is_required_and_down(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPRL_CAPTIONER", "vllm")
    code, out, _ = run(capsys, "doctor")
    assert code == 2 and "FAIL" in out and "vLLM" in out


@pytest.mark.slow
def test_delete_and_eval(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs / "transit.pdf")
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0

    queries = tmp_path / "q" / "queries.jsonl"
    queries.parent.mkdir()
    rows = [
        {"question": "battery pack prices by year", "file": "../docs/report.pdf", "page": 3},
        {"question": "installations by region in gigawatts", "file": str(docs / "report.pdf"), "page": 2},
        {"question": "a question about nothing indexed at all", "file": "../docs/report.pdf", "page": 1},
    ]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, out, _ = run(capsys, "eval", str(queries), "--json")
    metrics = json.loads(out)
    assert code == 0 and set(metrics) == {"n", "recall@1", "recall@5", "recall@10", "mrr"}
    assert metrics["n"] == 3 and metrics["recall@10"] >= 2 / 3 and 0 < metrics["mrr"] <= 1

    code, out, _ = run(capsys, "delete", str(docs / "transit.pdf"))
    assert code == 0 and "transit.pdf" in out
    code, out, _ = run(capsys, "status", "--json")
    status = json.loads(out)
    assert status["files"] == 1
    code, out, _ = run(capsys, "search", "bike lanes", "--json")
    assert all(not h["file_path"].endswith("transit.pdf") for h in json.loads(out))


def test_missing_embedding_model_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model loads while workers already parse: its failure still ends the run cleanly, naming the fix."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs / "transit.pdf")
    monkeypatch.setenv("CAPRL_EMBED_MODEL", str(tmp_path / "no-such-model"))
    code, _, err = run(capsys, "ingest", str(docs), "--captioner", "none")
    assert code == 2
    assert "no-such-model" in err and "CAPRL_EMBED_MODEL" in err
    monkeypatch.delenv("CAPRL_EMBED_MODEL")
    code, out, _ = run(capsys, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["files"] == 0 and status["points"] == 0  # nothing half-indexed


class _Images:
    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, uri: str) -> Path:
        return self.root / uri


class _Tty:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass


def test_hits_print_styled_on_a_terminal_and_plain_elsewhere(tmp_path: Path, monkeypatch, capsys) -> None:
    """search prints without rich (its import was a tenth of the command): bold rank, cyan file, an OSC 8
    link to the image on a terminal; nothing but text in a pipe, with NO_COLOR or TERM=dumb; a name's own
    escape sequences shown as text either way."""
    import sys

    from caprl_index.report import print_hits
    from caprl_index.search import Hit

    hit = Hit(
        id="1", score=0.5, file_path="/d/evil\x1b]0;x\x07.pdf", file_name="evil\x1b]0;x\x07.pdf", page=3,
        page_width=612, page_height=792, kind="figure", figure_type="chart", bbox=[1, 2, 3, 4],
        caption_source="ocr", caption_model=None, image_uri="crops/a b.png", page_image_uri=None,
        text="Solar\ncapacity " + "x" * 400,
    )  # fmt: skip
    images = _Images(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    print_hits([hit], images=images)
    plain = capsys.readouterr().out
    assert "\x1b" not in plain and "\x07" not in plain
    lines = plain.splitlines()
    assert lines[0] == " 1. 0.500  evil\\x1b]0;x\\x07.pdf p.3  figure (chart)  bbox 1,2,3,4"
    assert lines[1].startswith("    Solar capacity xxx") and lines[1].endswith("…") and len(lines[1]) == 304
    assert lines[2] == f"    image: {tmp_path / 'crops/a b.png'}"

    tty = _Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    print_hits([hit], images=images)
    screen = "".join(tty.parts)
    url = (tmp_path / "crops/a b.png").resolve().as_uri()
    assert "\x1b[1m 1.\x1b[0m" in screen and "\x1b[36mevil\\x1b]0;x\\x07.pdf\x1b[0m" in screen
    assert f"\x1b]8;;{url}\x1b\\{tmp_path / 'crops/a b.png'}\x1b]8;;\x1b\\" in screen and "%20" in url
    assert "\x07" not in screen
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        tty.parts.clear()
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            print_hits([hit], images=images)
        assert "\x1b" not in "".join(tty.parts)
