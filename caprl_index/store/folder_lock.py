"""One writer per embedded index: an advisory lock file beside the Edge shards.

Qdrant Edge locks its WAL too, but a second open then fails with "Can't init WAL: Kind(WouldBlock)", which
says nothing to a user. The lock here is taken first, so the second process gets a message that names the
folder, the process holding it and what to do instead. `flock` locks belong to the open file, so the kernel
drops them when the holder exits, SIGKILL included: a stale lock file never blocks the next run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from caprl_index.errors import StoreError

try:  # POSIX; elsewhere Edge's own WAL lock still refuses a second writer (its error is translated)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def in_use_message(folder: Path, holder: str = "") -> str:
    """The message for a folder that another process has open (also used for Edge's own lock error)."""
    if holder == str(os.getpid()):
        return (
            f"the index folder {folder} is already open in this process: close the other store object "
            "(engine.close()) before opening it again."
        )
    who = f" (pid {holder})" if holder else ""
    return (
        f"the index folder {folder} is in use by another caprl-index process{who}. Wait for it to finish, "
        "stop it (or the `caprl-index serve` holding the index), or run a Qdrant server (docker compose up "
        "qdrant) and set CAPRL_QDRANT_URL so several processes can write at once."
    )


class FolderLock:
    """An exclusive, non-blocking lock on `lock_file`, held from `acquire()` to `release()`."""

    def __init__(self, lock_file: Path, folder: Path) -> None:
        self.lock_file = lock_file
        self.folder = folder  # what the message names
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise `StoreError` naming the holder's pid."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise StoreError(in_use_message(self.folder, holder)) from None
        # The pid is only for the message; the lock itself is the flock, not the file's content.
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None
