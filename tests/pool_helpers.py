"""Functions for tests/test_pipeline_pool.py that must be importable in spawned worker processes."""

from __future__ import annotations

import os
import time

from caprl_index.models import SourceFile


def die_if_hostile(file: SourceFile) -> str:
    """Stands in for a native crash of the PDF library on a hostile file."""
    if "hostile" in file.path:
        os._exit(139)
    time.sleep(0.5)  # be in flight when the other task kills its worker
    return file.path
