"""Slides per second of both slide paths on ../shared/data/pptx, each against its baseline.

    python benchmarks/bench_slides.py [--limit N] [--skip-soffice] [--soffice PATH]

- python-pptx path (`prepare_slides(..., soffice=None)`: text, tables, notes, chart data, pictures
  re-encoded as figures) against a naive python-pptx text dump of the same decks.
- LibreOffice path (`prepare_slides` with soffice: isolated profile, hidden slides, chart data and
  notes read too) against a bare ``soffice --convert-to pdf`` of the same decks.

Ratios are measured in one run on one machine; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from caprl_index.config import Settings
from caprl_index.errors import CaprlError
from caprl_index.sources.discover import source_file
from caprl_index.sources.slides import prepare_slides

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pptx"


def naive_text(path: Path) -> int:
    """The baseline of the python-pptx path: every shape's text, nothing else."""
    from pptx import Presentation

    slides = list(Presentation(str(path)).slides)
    for slide in slides:
        "\n".join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame)
    return len(slides)


def native(path: Path, settings: Settings) -> int:
    with tempfile.TemporaryDirectory() as work:
        return prepare_slides(source_file(path), settings, Path(work), soffice=None).page_count


def bare_soffice(path: Path, soffice: str, profile: Path) -> int:
    """The baseline of the LibreOffice path: one conversion with a reused profile, no checks."""
    import pymupdf

    with tempfile.TemporaryDirectory() as out:
        command = [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf"]
        subprocess.run(
            [*command, "--outdir", out, str(path)], stdin=subprocess.DEVNULL, capture_output=True, check=True
        )
        with pymupdf.open(next(Path(out).glob("*.pdf"))) as doc:
            return int(doc.page_count)


def ours_soffice(path: Path, settings: Settings, soffice: str) -> int:
    with tempfile.TemporaryDirectory() as work:
        return prepare_slides(source_file(path), settings, Path(work), soffice=soffice).page_count


def measure(name: str, decks: list[Path], run: Callable[[Path], int]) -> float:
    started, slides = time.perf_counter(), 0
    for deck in decks:
        try:
            slides += run(deck)
        except (CaprlError, subprocess.CalledProcessError, StopIteration) as exc:
            print(f"  {deck.name}: failed ({exc})")
    elapsed = time.perf_counter() - started
    rate = slides / elapsed if elapsed else float("inf")
    print(f"{name:<34} {slides:5d} slides {elapsed:8.2f} s {rate:8.1f} slides/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="first N decks only (0 = all)")
    parser.add_argument("--skip-soffice", action="store_true", help="python-pptx path only")
    parser.add_argument("--soffice", default=shutil.which("soffice") or shutil.which("libreoffice"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the shared corpus sits next to the repository")
    decks = sorted(DATA.rglob("*.pptx"))[: args.limit or None]
    settings = Settings()
    print(f"{len(decks)} decks from {DATA}")
    base = measure("baseline: python-pptx text dump", decks, naive_text)
    ours = measure("caprl-index python-pptx path", decks, lambda p: native(p, settings))
    print(f"python-pptx path runs at {ours / base:.2f}x the naive text dump's slide rate")
    if args.skip_soffice or not args.soffice:
        return
    with tempfile.TemporaryDirectory() as profile:
        base = measure("baseline: bare soffice to PDF", decks, lambda p: bare_soffice(p, args.soffice, Path(profile)))
    ours = measure("caprl-index LibreOffice path", decks, lambda p: ours_soffice(p, settings, args.soffice))
    print(f"LibreOffice path runs at {ours / base:.2f}x the bare conversion's slide rate")


if __name__ == "__main__":
    main()
