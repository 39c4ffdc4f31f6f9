"""The splitter's NLTK without SciPy's statistics and scikit-learn (`caprl_index.lean_imports`).

They were 0.9 s of an ingest's start and 75 MB of its process. Held here: the chunks are exactly those of the
stock SentenceSplitter (each side in a fresh interpreter, so neither inherits the other's imports), neither
module is loaded by the chunker, and the finder refuses them to NLTK only: any other module, on any thread,
imports them as usual.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import EXAMPLES

_TEXTS = (
    "import json, pymupdf\n"
    f"doc = pymupdf.open({str(EXAMPLES / 'solar-market-report-2024.pdf')!r})\n"
    "texts = [page.get_text() for page in doc] + ['Dr. Smith went to Washington. He arrived at 5 p.m. sharp! '\n"
    "         'Was it late? No.' * 20, 'e.g. one; i.e. two. U.S. GDP rose 3.1% in Q2. ' * 40]\n"
)
_LEAN = _TEXTS + (
    "from caprl_index.chunking import Chunker\n"
    "chunker = Chunker(chunk_size=64, chunk_overlap=10)\n"
    "chunks = [chunker._text_splitter.split_text(t) for t in texts]\n"
)
_STOCK = _TEXTS + (
    "from llama_index.core.node_parser import SentenceSplitter\n"
    "splitter = SentenceSplitter(chunk_size=64, chunk_overlap=10)\n"
    "chunks = [splitter.split_text(t) for t in texts]\n"
)
_REPORT = "import sys\nprint(json.dumps([chunks, [m in sys.modules for m in ('scipy.stats', 'sklearn')]]))\n"


def _run(code: str) -> tuple[list[list[str]], list[bool]]:
    done = subprocess.run([sys.executable, "-c", code + _REPORT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    chunks, loaded = json.loads(done.stdout)
    return chunks, loaded


def test_the_chunks_are_the_stock_splitters_without_scipy_or_sklearn() -> None:
    lean, lean_loaded = _run(_LEAN)
    stock, stock_loaded = _run(_STOCK)
    assert sum(len(c) for c in lean) > 20
    assert lean == stock
    assert lean_loaded == [False, False]
    assert stock_loaded == [True, True], "the stock import loads both: this test would not see a regression"


def test_other_importers_still_get_them() -> None:
    """After NLTK was imported under the finder, another module on another thread imports scipy.stats and
    sklearn as usual; NLTK's own guarded names stay its fallbacks."""
    code = (
        "import json, sys, threading\n"
        "from caprl_index import lean_imports\n"
        "lean_imports.install(); lean_imports.install()\n"
        "import nltk\n"
        "from nltk.metrics import association\n"
        "assert 'scipy.stats' not in sys.modules and 'sklearn' not in sys.modules\n"
        "found = []\n"
        "def other():\n"
        "    import scipy.stats, sklearn.feature_extraction\n"
        "    found.append(scipy.stats.fisher_exact([[1, 2], [3, 4]])[1] > 0)\n"
        "t = threading.Thread(target=other); t.start(); t.join()\n"
        "finders = sum(type(f).__name__ == '_NltkOptionalImports' for f in sys.meta_path)\n"
        "print(json.dumps([found, finders, association.fisher_exact.__module__]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found, finders, fallback = json.loads(done.stdout)
    assert found == [True] and finders == 1
    assert fallback == "nltk.metrics.association"  # NLTK's own stand-in, not SciPy's function
