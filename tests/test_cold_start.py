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
