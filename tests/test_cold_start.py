"""The CLI starts light: no command imports torch, and `--help`, `status`, `search` import nothing heavy.

torch + sentence-transformers take seconds and hundreds of MB to import on a 2-core machine; before a
command runs, pydantic-settings alone is a tenth of a second. Each command is run in a fresh interpreter
and its modules are read after it returns, so a heavy import added at the top of any module on the path
fails here (the measured figures are in the README, from `python -X importtime`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"
TORCH = {"torch", "sentence_transformers", "transformers"}
# Not needed to answer status or a local search: the chunker, the service, the server client, parsing, OCR.
HEAVY = TORCH | {"llama_index", "fastapi", "uvicorn", "qdrant_client", "pymupdf", "fitz", "onnxruntime", "scipy"}
# `--help` runs no command at all: not even the settings or NumPy.
HELP_HEAVY = HEAVY | {"pydantic_settings", "numpy", "qdrant_edge", "tokenizers", "rich", "asyncio"}

_RUN = (
    "import json, sys\n"
    "from caprl_index.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "sys.stderr.write('\\nMODULES ' + json.dumps([code, sorted({m.split('.')[0] for m in sys.modules})]) + '\\n')\n"
)


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run the CLI in a fresh interpreter: its exit code, stdout, and the top-level modules it imported."""
    environ = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=600, env=environ)
    line = next(row for row in reversed(done.stderr.splitlines()) if row.startswith("MODULES "))
    code, modules = json.loads(line.removeprefix("MODULES "))
    return code, done.stdout, set(modules)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real index of one example PDF, ingested by the CLI with the default settings (its imports checked too)."""
    root = tmp_path_factory.mktemp("cold")
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    args = ("ingest", str(docs), "--captioner", "none", "--no-figures", "--qdrant-path", str(root / "q"))
    code, _, modules = cli(*args)
    assert code == 0
    assert not modules & TORCH, "the packaged model's documents (ONNX Runtime by default) must not import torch"
    assert "sklearn" not in modules, "NLTK's scikit-learn wrapper is not loaded for the splitter (lean_imports)"
    return root / "q"


def test_help_imports_nothing_heavy() -> None:
    code, out, modules = cli("--help")
    assert code == 0 and "ingest" in out
    assert not modules & HELP_HEAVY, sorted(modules & HELP_HEAVY)


def test_status_imports_nothing_heavy(index: Path) -> None:
    code, out, modules = cli("status", "--json", "--qdrant-path", str(index))
    assert code == 0 and json.loads(out)["files"] == 1
    assert not modules & HEAVY, sorted(modules & HEAVY)


def test_search_imports_nothing_heavy(index: Path) -> None:
    code, out, modules = cli("search", "solar installations by region", "--json", "--qdrant-path", str(index))
    hits = json.loads(out)
    assert code == 0 and hits and hits[0]["file_path"].endswith("report.pdf")
    assert not modules & HEAVY, sorted(modules & HEAVY)


def _script(*args: str, code: str = "from caprl_index.cli import run; run()") -> tuple[int, str, str]:
    """Run the console script's entry (`caprl_index.cli.run`) in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_the_console_script_exits_with_mains_code_and_its_output(index: Path) -> None:
    """`run()` skips the interpreter's teardown (os._exit) but not the exit code, the output or the
    streams' flush; a stdout that fails at that flush (a reader gone) is no traceback."""
    code, out, _ = _script("--help")
    assert code == 0 and "usage: caprl-index" in out and "search" in out
    code, _, err = _script("nosuch")
    assert code == 2 and "invalid choice" in err
    code, out, err = _script("search", "solar capacity", "--qdrant-path", str(index))
    assert code == 0 and "report.pdf" in out and not err.strip(), err
    gone = (
        "import sys\n"
        "from caprl_index.cli import run\n"
        "class Gone:\n"
        "    def write(self, text): raise BrokenPipeError(32, 'Broken pipe')\n"
        "    def flush(self): raise BrokenPipeError(32, 'Broken pipe')\n"
        "sys.stdout = Gone()\n"
        "run()\n"
    )
    code, _, err = _script("--version", code=gone)
    assert code == 0 and not err.strip(), err


def test_a_closed_pipe_is_not_an_internal_error(index: Path, monkeypatch, capsys) -> None:
    """`caprl-index status | head -1`: the command's next write fails, and that ends it quietly (exit 1)."""
    from caprl_index.cli import main

    class Gone:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone())
    code = main(["status", "--qdrant-path", str(index)])
    assert code == 1 and not capsys.readouterr().err.strip()
