"""NLTK without its optional SciPy and scikit-learn integrations.

LlamaIndex's SentenceSplitter sentence-splits with NLTK's Punkt tokenizer, and `import nltk` imports every
subpackage, among them the collocation statistics (`from scipy.stats import fisher_exact`) and the
scikit-learn classifier wrapper. Neither is used to split sentences, and NLTK guards both imports (it
runs without SciPy or scikit-learn), yet they were 0.9 s of an ingest's start on 2 cores (more while
the parser processes start beside it), 75 MB of the ingest process and ~0.1 s of its exit.

`install()` adds an import finder that refuses `scipy.stats` and `sklearn` to imports written in NLTK's
own modules, and to nothing else: whichever thread imports them for another module gets them as usual, and
a process that imported them before NLTK keeps them (NLTK then binds the real ones).
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_REFUSED = ("scipy.stats", "sklearn")  # and their submodules
_lock = threading.Lock()


class _NltkOptionalImports(importlib.abc.MetaPathFinder):
    """Refuses the modules of `_REFUSED` to an import statement in a module of NLTK."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> Any:
        if not any(fullname == name or fullname.startswith(name + ".") for name in _REFUSED):
            return None
        importer = _importer(sys._getframe(1))
        if importer == "nltk" or importer.startswith("nltk."):
            raise ModuleNotFoundError(f"{fullname} is not loaded for NLTK (caprl_index.lean_imports)", name=fullname)
        return None


def _importer(frame: Any) -> str:
    """The module whose code runs the import being resolved (the first frame outside importlib)."""
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


def install() -> None:
    """Add the finder once (before anything imports NLTK: afterwards it changes nothing)."""
    with _lock:
        if not any(isinstance(f, _NltkOptionalImports) for f in sys.meta_path):
            sys.meta_path.insert(0, _NltkOptionalImports())
