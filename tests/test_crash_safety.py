"""A real `caprl-index ingest` process killed with SIGKILL at several moments leaves an index that the next
ingest repairs: no duplicate, no lost point of any other file, and finally exactly the points of a clean run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow


def _env(qdrant: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPRL_")}
    env.update(CAPRL_QDRANT_PATH=str(qdrant), CAPRL_CAPTIONER="none", CAPRL_WORKERS="1", HF_HUB_OFFLINE="1",
               CAPRL_CONFIG=str(qdrant.parent / "none.toml"))  # fmt: skip
    return env


def _ingest(docs: Path, qdrant: Path) -> int:
    cmd = [sys.executable, "-m", "caprl_index.cli", "ingest", str(docs)]
    return subprocess.run(cmd, env=_env(qdrant), capture_output=True, timeout=300).returncode


def _killed_ingest(docs: Path, qdrant: Path, after_s: float) -> None:
    cmd = [sys.executable, "-m", "caprl_index.cli", "ingest", str(docs)]
    proc = subprocess.Popen(cmd, env=_env(qdrant), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _points(qdrant: Path) -> dict[str, tuple[str, str]]:
    from caprl_index.config import Settings
    from caprl_index.testing.index import all_points

    points = all_points(Settings(qdrant_path=qdrant))
    return {p.id: (p.payload["file_name"], p.payload["file_sha256"]) for p in points}


def _dangling_images(qdrant: Path) -> list[str]:
    """Image references of points whose file is missing (images are written before their points)."""
    from caprl_index.config import Settings
    from caprl_index.testing.index import all_points

    settings = Settings(qdrant_path=qdrant)
    root = settings.index_dir / "images"
    uris = {u for p in all_points(settings) for u in (p.payload["image_uri"], p.payload["page_image_uri"]) if u}
    assert uris or not all_points(settings)
    return sorted(u for u in uris if not (root / u).is_file())


def _timed_ingest(docs: Path, qdrant: Path) -> float:
    start = time.monotonic()
    assert _ingest(docs, qdrant) == 0
    return time.monotonic() - start


@pytest.mark.timeout(1200)
def test_sigkill_at_any_moment_is_repaired_by_the_next_ingest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "city-transit-infographic.pdf", docs / "other.pdf")
    shutil.copy(EXAMPLES / "solar-market-report-2024.pdf", docs / "report.pdf")
    # The state the index must converge to: a clean run over the final folder.
    (docs / "report.pdf").write_bytes((EXAMPLES / "solar-market-report-2024.pdf").read_bytes() + b"\n% v2\n")
    reference_dir = tmp_path / "ref" / "qdrant"
    duration = _timed_ingest(docs, reference_dir)
    reference = _points(reference_dir)
    assert reference

    # Kill points spread over the run: start-up, splitting, embedding/upserting, finishing.
    ref_report = {pid for pid, (name, _) in reference.items() if name == "report.pdf"}
    for i, fraction in enumerate((0.35, 0.7, 0.9)):
        qdrant = tmp_path / f"run{i}" / "qdrant"
        (docs / "report.pdf").write_bytes((EXAMPLES / "solar-market-report-2024.pdf").read_bytes())
        assert _ingest(docs, qdrant) == 0  # version 1 of report.pdf fully indexed, with other.pdf
        before = _points(qdrant)
        other_before = {pid for pid, (name, _) in before.items() if name == "other.pdf"}
        report_before = {pid for pid, (name, _) in before.items() if name == "report.pdf"}
        (docs / "report.pdf").write_bytes((EXAMPLES / "solar-market-report-2024.pdf").read_bytes() + b"\n% v2\n")

        _killed_ingest(docs, qdrant, after_s=duration * fraction)
        after_kill = _points(qdrant)
        assert _dangling_images(qdrant) == []
        # Nothing of the untouched file is lost; the changed file is complete in one version or the other.
        assert other_before <= set(after_kill)
        assert report_before <= set(after_kill) or ref_report <= set(after_kill)

        assert _ingest(docs, qdrant) == 0
        assert _points(qdrant) == reference, f"kill at {fraction:.0%} of the run was not repaired"
        assert _dangling_images(qdrant) == []
