"""Discover input files: walk paths, keep supported types, hash contents, partition into shards."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from caprl_index.errors import ConfigError
from caprl_index.models import SourceFile

PDF_EXTENSIONS = frozenset({".pdf"})
SLIDE_EXTENSIONS = frozenset({".pptx", ".ppt", ".odp", ".key"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
SUPPORTED_EXTENSIONS = PDF_EXTENSIONS | SLIDE_EXTENSIONS | IMAGE_EXTENSIONS

_HASH_BLOCK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def is_supported(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def absolute(raw: str | Path) -> Path:
    """The absolute path as the user named it: `~` expanded, `..` folded, symbolic links kept.

    Links are not resolved, so a file is indexed under the path the user pointed at (inside the folder
    given), and `delete FOLDER` / `--prune` find it there.
    """
    return Path(os.path.abspath(Path(raw).expanduser()))


def iter_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield candidate files below `paths` in a stable order (hidden files and folders skipped).

    Files named explicitly are yielded whatever they are (unsupported type, broken link, named pipe), so
    the caller can report each one instead of silently ignoring it; files found by walking folders are
    filtered by extension. Symbolic links to files are followed wherever they point; links to folders
    are not descended into (a link cycle would never end), unless named explicitly.
    """
    for raw in paths:
        path = absolute(raw)
        if path.is_dir():
            yield from _walk(path)
        elif os.path.lexists(path):
            yield path
        else:
            raise ConfigError(f"{raw}: no such file or folder")


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and is_supported(name):
                yield Path(root) / name


def source_file(path: Path) -> SourceFile:
    """Hash one file into a SourceFile."""
    return SourceFile(path=str(path), sha256=sha256_file(path), size=path.stat().st_size)


def parse_shard(spec: str) -> tuple[int, int]:
    """Parse ``--shard i/n`` (1-based i) into (i, n)."""
    try:
        left, right = spec.split("/")
        index, count = int(left), int(right)
    except ValueError:
        raise ConfigError(f"--shard {spec!r}: expected i/n, for example 1/4") from None
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard {spec!r}: need 1 <= i <= n, for example 1/4")
    return index, count


def in_shard(path: str | Path, index: int, count: int) -> bool:
    """Stable partition by the path's hash: the same file lands in the same shard on every machine.

    The key is the path as given relative to the ingest root would be ideal, but machines mount the
    corpus at the same place in a deployment, so the absolute path is used.
    """
    digest = hashlib.sha256(os.fsencode(path)).digest()  # any bytes the file system allows in a name
    return int.from_bytes(digest[:8], "big") % count == index - 1
