"""The fault matrix: every bad input, fault and race of the reliability review, one case each.

Each case runs the real CLI on a good file plus the bad thing and checks: the exit code, one clear line
naming the file (never a traceback), that the good file is indexed, and that the index's point ids equal
a clean ingest of the good file alone. Terminal cases run under a pseudo-terminal so the rich path runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest

from caprl_index.cli import main
from caprl_index.config import Settings
from caprl_index.testing.index import all_points
from tests.test_figures import bomb_png

pytestmark = pytest.mark.slow


def text_pdf(path: Path, text: str, pages: int = 1) -> Path:
    doc = pymupdf.open()
    for n in range(pages):
        doc.new_page(width=612, height=792).insert_textbox(pymupdf.Rect(72, 72, 540, 720), f"{text} (page {n + 1})")
    doc.save(path)
    return path


GOOD_TEXT = "Battery storage prices fell by a third between 2021 and 2024 in every region we surveyed."


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one good PDF, at the same path in every case (so point ids compare)."""
    folder = tmp_path_factory.mktemp("good")
    text_pdf(folder / "good.pdf", GOOD_TEXT, pages=2)
    return folder


@pytest.fixture(scope="module")
def reference_ids(good: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Point ids of a clean ingest of the good folder alone."""
    index = tmp_path_factory.mktemp("ref") / "qdrant"
    mp = pytest.MonkeyPatch()
    mp.setenv("CAPRL_QDRANT_PATH", str(index))
    try:
        assert main(["ingest", str(good), "--captioner", "none", "--workers", "1"]) == 0
    finally:
        mp.undo()
    ids = {p.id for p in all_points(Settings(qdrant_path=index))}
    assert ids
    return ids


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err, out.err
    return code, out.out, out.err


def index_ids() -> set[str]:
    return {p.id for p in all_points(Settings())}


def status_json(capsys: pytest.CaptureFixture) -> dict:
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    return json.loads(out)


# --- bad inputs next to a good file: (name, maker, phrase of the one-line reason) ---------------------


def _corrupt(d: Path) -> Path:
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 100)
    return d / "corrupt.pdf"


def _encrypted(d: Path) -> Path:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret")
    doc.save(d / "locked.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    return d / "locked.pdf"


def _empty(d: Path) -> Path:
    (d / "empty.pdf").write_bytes(b"")
    return d / "empty.pdf"


def _zero_pages(d: Path) -> Path:
    (d / "nopages.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
        b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    return d / "nopages.pdf"


def _bomb(d: Path) -> Path:
    return bomb_png(d / "bomb.png")


def _fifo(d: Path) -> Path:
    os.mkfifo(d / "pipe.pdf")
    return d / "pipe.pdf"


def _socket(d: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.pdf"))
    sock.close()  # the socket file stays
    return d / "sock.pdf"


def _link_loop(d: Path) -> Path:
    (d / "loop.pdf").symlink_to("loop.pdf")
    return d / "loop.pdf"


def _dangling(d: Path) -> Path:
    (d / "gone.pdf").symlink_to(d / "never-existed.pdf")
    return d / "gone.pdf"


def _zip_named_pdf(d: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(d / "deck.pdf", "w") as zf:
        zf.writestr("ppt/presentation.xml", "<p/>")
    return d / "deck.pdf"


def _non_utf8_name(d: Path) -> Path:
    raw = os.path.join(os.fsencode(d), b"caf\xe9.pdf")
    os.rename(text_pdf(d / "latin1.pdf", "Latin-1 file name"), raw)
    return Path(os.fsdecode(raw))


BAD_INPUTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("corrupt", _corrupt, "re-export or re-download"),
    ("encrypted", _encrypted, "password"),
    ("empty", _empty, "empty (0 bytes)"),
    ("zero pages", _zero_pages, "no pages"),
    ("decompression bomb", _bomb, "decompression bomb"),
    ("named pipe", _fifo, "a named pipe, not a regular file"),
    ("socket", _socket, "a socket, not a regular file"),
    ("symlink loop", _link_loop, "link loop"),
    ("dangling symlink", _dangling, "broken symbolic link"),
    ("mislabelled zip", _zip_named_pdf, "rename it"),
    ("non-UTF-8 name", _non_utf8_name, "not valid UTF-8"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("case", "make", "phrase"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_alone_with_one_line(
    case: str, make: Callable[[Path], Path], phrase: str, good: Path, reference_ids: set[str], tmp_path: Path, capsys
) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = make(bad_dir)
    # Twice: a new index (failures recorded before the collection exists), then an existing one.
    for attempt in range(2):
        code, _, err = run(capsys, "ingest", str(good), str(bad_dir), "--captioner", "none")
        assert code == 1, err
        lines = [ln for ln in err.splitlines() if ln.startswith("FAILED ")]  # the summary line
        assert len(lines) == 1 and phrase in lines[0], err
        assert index_ids() == reference_ids, f"attempt {attempt}: the good file's points differ"
    failed = status_json(capsys)["failed"]
    assert len(failed) == 1 and phrase in failed[0]["error"]
    if case == "non-UTF-8 name":
        assert failed[0]["file_path"].endswith("caf\\xe9.pdf")  # shown escaped, never raw bytes
    else:
        assert failed[0]["file_path"] == str(bad)


@pytest.mark.timeout(300)
def test_named_pipe_named_explicitly_does_not_hang(good: Path, tmp_path: Path, capsys) -> None:
    bad = _fifo(tmp_path)
    code, _, err = run(capsys, "ingest", str(good / "good.pdf"), str(bad), "--captioner", "none")
    assert code == 1 and "a named pipe" in err


def test_non_utf8_name_with_shards(good: Path, tmp_path: Path, capsys) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    _non_utf8_name(bad_dir)
    codes = [
        run(capsys, "ingest", str(good), str(bad_dir), "--captioner", "none", "--shard", f"{i}/2")[0] for i in (1, 2)
    ]
    assert sorted(codes) == [0, 1]  # the file lands in exactly one shard, and fails there with its line


def test_first_failure_in_a_new_server_collection_is_recorded(tmp_path: Path, embedder) -> None:
    """On a server the records collection must exist before a failure is written (the embedded engine
    creates it on the first write); a file can fail before the model has loaded and made the collections."""

    from qdrant_client import QdrantClient

    from caprl_index.pipeline import ingest
    from caprl_index.store import QdrantStore
    from caprl_index.store.server import ServerEngine

    bad = tmp_path / "notes.txt"  # fails while planning: before any collection exists
    bad.write_text("not a document")
    settings = Settings(captioner="none", workers=1)
    store = QdrantStore(settings, engine=ServerEngine(QdrantClient(path=str(tmp_path / "server")), "caprl"))
    stats = ingest([bad], settings, embedder=embedder, store=store)
    assert stats.files_failed == 1
    store = QdrantStore(settings, engine=ServerEngine(QdrantClient(path=str(tmp_path / "server")), "caprl"))
    try:
        assert not store.records()[str(bad)].complete
    finally:
        store.close()


def test_unsupported_file_named_explicitly(good: Path, reference_ids: set[str], tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a document")
    code, _, err = run(capsys, "ingest", str(good), str(notes), "--captioner", "none")
    assert code == 1 and "unsupported file type '.txt'" in err
    assert index_ids() == reference_ids
    assert [f["file_path"] for f in status_json(capsys)["failed"]] == [str(notes)]


def test_mislabelled_image_is_indexed_with_a_warning(good: Path, tmp_path: Path, capsys) -> None:
    from PIL import Image

    Image.new("RGB", (60, 40), "green").save(tmp_path / "really-a-png.pdf", format="PNG")
    code, _, err = run(capsys, "ingest", str(good), str(tmp_path / "really-a-png.pdf"), "--captioner", "none")
    assert code == 0 and "named .pdf but the content is IMAGE" in err


# --- links: stored where the user pointed ---------------------------------------------------------------


def test_symlinked_file_is_stored_under_the_link(tmp_path: Path, capsys) -> None:
    (tmp_path / "elsewhere").mkdir()
    outside = text_pdf(tmp_path / "elsewhere" / "target.pdf", GOOD_TEXT)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "link.pdf").symlink_to(outside)
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    assert {p.payload["file_path"] for p in all_points(Settings())} == {str(docs / "link.pdf")}
    code, out, _ = run(capsys, "delete", str(docs))
    assert code == 0 and str(docs / "link.pdf") in out
    assert all_points(Settings()) == [] and outside.exists()
    # Named explicitly, the link is still stored under its own path, never its target's.
    assert run(capsys, "ingest", str(docs / "link.pdf"), "--captioner", "none")[0] == 0
    assert {p.payload["file_path"] for p in all_points(Settings())} == {str(docs / "link.pdf")}


def test_pruning_finds_a_removed_link(tmp_path: Path, capsys) -> None:
    target = text_pdf(tmp_path / "target.pdf", GOOD_TEXT)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "link.pdf").symlink_to(target)
    assert run(capsys, "ingest", str(docs), "--captioner", "none")[0] == 0
    (docs / "link.pdf").unlink()
    code, _, err = run(capsys, "ingest", str(docs), "--prune", "--captioner", "none")
    assert code == 0 and "1 pruned" in err and all_points(Settings()) == []


# --- lost points are repaired ---------------------------------------------------------------------------


def test_lost_points_are_reported_and_reindexed(good: Path, reference_ids: set[str], capsys) -> None:
    from caprl_index.store import PointFilter, QdrantStore

    assert run(capsys, "ingest", str(good), "--captioner", "none")[0] == 0
    store = QdrantStore(Settings())
    try:  # what a LlamaIndex delete_ref_doc or a partial restore does: points gone, record kept
        victim = sorted(reference_ids)[0]
        store.engine.delete(PointFilter(ids=(victim,)))
    finally:
        store.close()
    status = status_json(capsys)
    assert [i["file_path"] for i in status["incomplete"]] == [str(good / "good.pdf")]
    assert status["incomplete"][0]["points_found"] == len(reference_ids) - 1
    code, _, err = run(capsys, "ingest", str(good), "--captioner", "none")
    assert code == 0 and "had lost points" in err and "1 indexed" in err
    assert index_ids() == reference_ids
    assert status_json(capsys)["incomplete"] == []


# --- usage and store errors: exit 2, one line, nothing created or deleted -----------------------------


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["search", "solar", "-k", "0"], "-k: 0 is not allowed"),
        (["search", "solar", "-k", "-3"], "-k: -3 is not allowed"),
        (["search", "   "], "the query is empty"),
        (["search", "solar", "--pages", "5-2"], "backwards"),
        (["search", "solar", "--pages", "0"], "pages count from 1"),
    ],
)
def test_search_usage_errors(args: list[str], phrase: str, good: Path, capsys) -> None:
    assert run(capsys, "ingest", str(good), "--captioner", "none")[0] == 0
    try:
        code, _, err = run(capsys, *args)
    except SystemExit as exc:  # argparse's own usage errors
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == 2 and phrase in err and "Traceback" not in err


def test_commands_in_a_folder_without_index_say_so_and_create_nothing(tmp_path: Path, capsys) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"question": "x", "file": "a.pdf", "page": 1}\n')
    for args in (["status"], ["search", "solar"], ["eval", str(queries)], ["delete", str(tmp_path)]):
        code, _, err = run(capsys, *args)
        assert code == 2 and "no index in" in err and "caprl-index ingest" in err, (args, err)
    assert not Path(os.environ["CAPRL_QDRANT_PATH"]).exists()


def test_unknown_config_key_is_named(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "caprl-index.toml"
    config.write_text('colection = "typo"\n')
    code, _, err = run(capsys, "status", "--config", str(config))
    assert code == 2 and "unknown setting 'colection'" in err and "did you mean 'collection'" in err
    config.write_text("collection = \n")
    code, _, err = run(capsys, "status", "--config", str(config))
    assert code == 2 and "not a readable TOML file" in err
    monkeypatch.setenv("CAPRL_NOT_A_SETTING", "1")  # stray environment variables stay tolerated
    assert run(capsys, "status", "--config", str(tmp_path / "missing.toml"))[0] == 2


def test_damaged_store_is_a_clear_error_and_nothing_is_deleted(good: Path, capsys) -> None:
    assert run(capsys, "ingest", str(good), "--captioner", "none")[0] == 0
    folder = Path(os.environ["CAPRL_QDRANT_PATH"])
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
    for victim in files[:3]:  # the largest files hold the points
        victim.write_bytes(b"\x00garbage" * 64)
    folders = sorted(str(p) for p in folder.rglob("*") if p.is_dir())
    for args in (["status"], ["search", "battery prices"], ["ingest", str(good), "--captioner", "none"]):
        code, _, err = run(capsys, *args)
        assert code == 2 and str(folder) in err and ("damaged" in err or "failed" in err), (args, err)
    # Nothing is deleted or "repaired" away (Qdrant Edge folds its own journal files on open; that is all).
    assert sorted(str(p) for p in folder.rglob("*") if p.is_dir()) == folders
    assert all(v.read_bytes() == b"\x00garbage" * 64 for v in files[:3])


# --- errors in the right class ----------------------------------------------------------------------------


def test_embedding_server_failure_fails_only_that_file(tmp_path: Path, capsys, monkeypatch) -> None:
    from caprl_index.testing.fake_embeddings import FakeEmbeddings

    docs = tmp_path / "docs"
    docs.mkdir()
    text_pdf(docs / "fine.pdf", GOOD_TEXT)
    text_pdf(docs / "poisoned.pdf", "This page holds the POISON word the server cannot embed.")
    with FakeEmbeddings(poison="POISON") as server:
        monkeypatch.setenv("CAPRL_EMBED_URL", server.url)
        monkeypatch.setenv("CAPRL_EMBED_MODEL", "fake")
        code, _, err = run(capsys, "ingest", str(docs), "--captioner", "none", "--workers", "1")
    assert code == 1
    [line] = [ln for ln in err.splitlines() if ln.startswith("FAILED ")]
    assert "poisoned.pdf" in line and "embedding server" in line and "retries it" in line
    assert {p.payload["file_name"] for p in all_points(Settings())} == {"fine.pdf"}


def test_unreachable_embedding_server_is_a_configuration_error(good: Path, capsys, monkeypatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("CAPRL_EMBED_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("CAPRL_EMBED_MODEL", "fake")
    code, _, err = run(capsys, "ingest", str(good), "--captioner", "none")
    assert code == 2 and "CAPRL_EMBED_URL" in err


def test_missing_soffice_is_one_configuration_error(tmp_path: Path, capsys, monkeypatch) -> None:
    from pptx import Presentation

    deck = tmp_path / "deck.pptx"
    Presentation().save(deck)
    monkeypatch.setenv("CAPRL_SOFFICE", "/no/such/soffice")
    code, _, err = run(capsys, "ingest", str(deck), "--captioner", "none")
    assert code == 2 and "CAPRL_SOFFICE='/no/such/soffice': no such program" in err
    assert "corrupt" not in err.lower()


# --- captions: reasons shown, OCR figures always upgradable -------------------------------------------


def _chart_docs(tmp_path: Path) -> Path:
    from tests.conftest import EXAMPLES

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs / "transit.pdf")
    return docs


def test_caption_failure_reasons_are_counted_and_advised(tmp_path: Path, capsys, monkeypatch) -> None:
    from caprl_index.testing.fake_vllm import FakeVLLM

    docs = _chart_docs(tmp_path)
    with FakeVLLM(model="caprl") as server:
        server.fail_next("500", n=10_000)
        monkeypatch.setenv("CAPRL_VLLM_URL", server.url)
        monkeypatch.setenv("CAPRL_MAX_RETRIES", "1")
        code, _, err = run(capsys, "ingest", str(docs))
    assert code == 0
    assert "caption failures, server error:" in err and "vLLM answered with errors" in err
    assert "HTTP 500" in err and "reachable at" not in err and "retries exactly those" in err
    assert "HTTP Request:" not in err  # the HTTP client's per-request lines stay quiet without -v
    status = status_json(capsys)
    assert set(status["caption_failures"]) == {"server error"} and status["captions_pending"]


def test_ocr_captioner_figures_are_captioned_once_vllm_is_up(tmp_path: Path, capsys, monkeypatch) -> None:
    from caprl_index.testing.fake_vllm import FakeVLLM

    docs = _chart_docs(tmp_path)
    code, _, _err = run(capsys, "ingest", str(docs), "--captioner", "ocr")
    assert code == 0 and status_json(capsys)["captions_pending"]
    with FakeVLLM(model="caprl") as server:
        monkeypatch.setenv("CAPRL_VLLM_URL", server.url)
        assert run(capsys, "ingest", str(docs))[0] == 0
        assert server.chat_requests
    figures = [p.payload for p in all_points(Settings()) if p.payload["kind"] != "text"]
    assert figures and all(f["caption_source"] == "vllm" for f in figures)
    assert status_json(capsys)["captions_pending"] == []


# --- the terminal shows document text, never executes it -------------------------------------------------

EVIL_NAME = "evil\x1b]0;pwned\x07[red]x[blink].pdf"
EVIL_TEXT = "Clear screen \x1b[2J and ring \x07 the bell. Battery storage prices fell."


def _pty_run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    import pty

    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "caprl_index.cli", *args]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.timeout(600)
def test_terminal_injection_is_escaped_on_plain_and_rich_output(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    text_pdf(docs / "plain.pdf", EVIL_TEXT).rename(docs / EVIL_NAME)  # MuPDF cannot save to such a name
    (docs / "a[").mkdir()  # the path reads ".../a[/bold]broken.pdf": a closing tag rich cannot match
    (docs / "a[" / "bold]broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "CAPRL_CAPTIONER": "none"}
    code, screen = _pty_run(["ingest", str(docs)], env)  # the rich progress bar and failure lines
    assert code == 1 and "Traceback" not in screen and "MarkupError" not in screen
    assert "a[/bold]broken.pdf" in screen  # markup shown as text, not applied
    code, search_screen = _pty_run(["search", "battery storage prices"], env)
    assert code == 0
    code, status_screen = _pty_run(["status"], env)
    for output in (screen, search_screen, status_screen):
        assert "\x1b]0;" not in output and "\x07" not in output and "\x1b[2J" not in output
        assert "\x1b[5m" not in output  # nothing blinks
    assert "\\x1b]0;pwned\\x07" in search_screen
    # Plain output (a pipe) is escaped the same way; --json stays exact JSON of the stored text.
    code, out, _err = run(capsys, "search", "battery storage prices", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["file_name"] == EVIL_NAME and "\x1b" not in out and "\x07" not in out
    code, out, _ = run(capsys, "search", "battery storage prices")
    assert "\x1b" not in out and "\\x1b]0;pwned" in out


# --- processes: none outlives the run, Ctrl-C prints no worker tracebacks --------------------------------


def _busy_docs(tmp_path: Path) -> Path:
    from tests.conftest import EXAMPLES

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        for src in EXAMPLES.glob("*.pdf"):
            shutil.copy(src, docs / f"{i}-{src.name}")
    return docs


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(docs: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], list]:
    import time

    import psutil

    env = {**os.environ, "CAPRL_CAPTIONER": "none", "CAPRL_WORKERS": "2"}
    cmd = [sys.executable, "-m", "caprl_index.cli", "ingest", str(docs)]
    # Ctrl-C as at a terminal: SIGINT at its default. A test run started in the background by a shell
    # without job control ignores SIGINT, and a child inherits that (and rightly keeps it).
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children(recursive=True)
        if sum("spawn_main" in " ".join(c.cmdline()) for c in children) >= 2:
            return proc, children
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the parser workers never started")


def _gone_within(processes: list, seconds: float) -> list:
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return alive


@pytest.mark.timeout(300)
def test_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    import signal

    proc, children = _start(_busy_docs(tmp_path), tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    alive = _gone_within(children, 20)
    for p in alive:
        p.kill()
    assert not alive, [" ".join(p.cmdline()) for p in alive]


@pytest.mark.timeout(300)
def test_ctrl_c_stops_cleanly_without_worker_tracebacks(tmp_path: Path) -> None:
    import signal

    proc, children = _start(_busy_docs(tmp_path), tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
    _, err = proc.communicate(timeout=120)
    text = err.decode("utf-8", "replace")
    assert proc.returncode == 130 and "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "interrupted" in text
    assert not _gone_within(children, 20)
