"""Where evidence images live: a folder by default; the `ImageStore` protocol leaves room for object stores.

Keys are relative paths (`crops/ab/ab12….png`); a key is also the URI stored in the payload. Writes go to a
temporary name and are renamed into place, so a reader (or a crash) never sees half an image.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from caprl_index.errors import ConfigError

if TYPE_CHECKING:
    from caprl_index.config import Settings

_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def crop_key(image_sha256: str, mime: str) -> str:
    """The key of a figure crop: content-addressed by the sha256 of its bytes."""
    return f"crops/{image_sha256[:2]}/{image_sha256}.{_EXT.get(mime, 'png')}"


def page_key(file_sha256: str, page: int, *, thumb: bool = False) -> str:
    """The key of a page render (or its thumbnail) of one file version."""
    return f"pages/{file_sha256}/{page}{'.thumb' if thumb else ''}.webp"


def thumbnail_uri(page_uri: str) -> str:
    """The thumbnail beside a page render's URI."""
    return page_uri[: -len(".webp")] + ".thumb.webp" if page_uri.endswith(".webp") else page_uri


class ImageStore(Protocol):
    """Evidence images by key. `uri(key)` is what the payload stores."""

    def put(self, key: str, data: bytes) -> str:
        """Write `data` under `key` (an existing key is kept: content-addressed); returns its URI."""
        ...

    def read(self, uri: str) -> bytes: ...

    def local_path(self, uri: str) -> Path | None:
        """A file holding the image, when the store is a local folder."""
        ...

    def exists(self, uri: str) -> bool: ...

    def delete(self, uri: str) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under `prefix` (`crops/`, `pages/<file_sha256>/`)."""
        ...

    def size_bytes(self) -> int: ...


class LocalImageStore:
    """Images in a folder (default: `images/` beside the index)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, uri: str) -> Path:
        path = (self.root / uri).resolve()
        if self.root.resolve() not in path.parents:  # a payload can be written by anyone with store access
            raise ConfigError(f"image reference {uri!r} points outside the image folder {self.root}")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        if path.exists() and path.stat().st_size == len(data):
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def read(self, uri: str) -> bytes:
        return self._path(uri).read_bytes()

    def local_path(self, uri: str) -> Path | None:
        path = self._path(uri)
        return path if path.is_file() else None

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        path.unlink(missing_ok=True)
        for parent in (path.parent, path.parent.parent):  # drop emptied folders (not the root)
            if parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0


def open_image_store(settings: Settings) -> ImageStore | None:
    """The configured image store; None when images are not kept (`CAPRL_KEEP_IMAGES=false`)."""
    if not settings.keep_images:
        return None
    return LocalImageStore(settings.image_root or settings.index_dir / "images")
