"""Moving an index between engines: `copy_index` (what `caprl-index push` runs) and the migration of an index
written by the previous release (qdrant-client local mode) to Qdrant Edge.

Copies move stored vectors, so nothing is embedded or captioned again. Points go first, in id order and in
batches; the file records go last, so a half-finished copy never holds a record whose points are missing
(the pipeline would take that file as indexed and skip it).

Resuming: after each batch is written (durably: both engines' writes are), the copy saves the source's
next scroll offset in a small JSON state file, replaced atomically. A rerun with the same state file starts
at that offset. A crash between a batch's write and the state's save repeats that one batch, which rewrites
the same ids: no duplicates, nothing lost. A state file from another source, destination or source size is
ignored (the copy starts over, again harmlessly). The state file is removed once the copy is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caprl_index.errors import StoreError
from caprl_index.store.engine import RECORDS_SUFFIX, Engine, NewPoint

RECORD_BATCH = 256
MIGRATING = ".edge-migrating"  # the new index, built beside the old one
PRE_EDGE = ".pre-edge"  # where the old folder is kept once the new one is complete
_DONE_MARK = "MIGRATED.json"


@dataclass(frozen=True)
class CopyResult:
    """What a copy wrote: `points` in this call (after `skipped` copied by an earlier, interrupted one)."""

    points: int
    records: int
    skipped: int = 0


@dataclass(frozen=True)
class MigrationResult:
    """A finished migration: the collections moved, their totals, and where the old folder now is."""

    collections: tuple[str, ...]
    points: int
    records: int
    old_folder: Path


def copy_index(
    src: Engine,
    dst: Engine,
    *,
    batch: int = 512,
    on_progress: Callable[[int], None] | None = None,
    state_file: Path | None = None,
) -> CopyResult:
    """Copy every point (both vectors, payload) and every file record of `src` into `dst`.

    `dst` is created with `src`'s dense size if absent (a different size is refused). `on_progress` gets the
    number of points copied so far after each batch. Pass `state_file` to make an interrupted copy resumable.
    """
    dim = src.dense_size()
    if not src.exists() or dim is None:
        raise StoreError(f"there is no collection {src.collection!r} in {src.describe()} to copy.")
    dst.create(dim)
    total = src.count()
    identity = {"src": [src.describe(), src.collection], "dst": [dst.describe(), dst.collection], "total": total}
    state = _read_state(state_file, identity)
    offset, done = state.get("offset"), int(state.get("done", 0))
    skipped = done
    while state.get("phase", "points") == "points":
        page, offset = src.scroll(limit=batch, offset=offset, with_vectors=True)
        dst.upsert([NewPoint(p.id, p.dense or [], p.sparse or ([], []), p.payload) for p in page])
        done += len(page)
        state = {**identity, "phase": "points" if offset else "records", "offset": offset, "done": done}
        _write_state(state_file, state)
        if on_progress is not None:
            on_progress(done)
    records = list(src.records().values())
    for start in range(0, len(records), RECORD_BATCH):
        dst.put_records(records[start : start + RECORD_BATCH])
    dst.optimize()
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    return CopyResult(points=done - skipped, records=len(records), skipped=skipped)


def _read_state(state_file: Path | None, identity: dict[str, Any]) -> dict[str, Any]:
    if state_file is None or not state_file.exists():
        return {}
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # unreadable: start over, which is always safe
    same = all(state.get(k) == v for k, v in identity.items())
    return state if same else {}


def _write_state(state_file: Path | None, state: dict[str, Any]) -> None:
    if state_file is None:
        return
    tmp = state_file.with_name(state_file.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, state_file)  # atomic: a crash leaves the old state or the new one


# --- the previous release's folders ----------------------------------------------------------
def is_legacy_local(path: Path) -> bool:
    """True for a folder written by qdrant-client's local mode (the embedded store before Qdrant Edge)."""
    path = Path(path)
    return (path / "meta.json").is_file() and any((path / "collection").glob("*/storage.sqlite"))


def legacy_error(path: Path) -> StoreError:
    """What to tell a user whose index folder still has the old format."""
    return StoreError(
        f"the index folder {path} was written by an earlier caprl-index (qdrant-client local mode). Run "
        f"`caprl-index migrate` once to convert it to Qdrant Edge: stored vectors and captions are copied, "
        f"nothing is embedded or captioned again, and the old folder is kept as {Path(path).name}{PRE_EDGE}."
    )


def migrate_legacy(path: Path, collection: str, *, on_progress: Callable[[int], None] | None = None) -> MigrationResult:
    """Convert the old-format folder `path` to an Edge index in place, keeping the old one beside it.

    Every caprl-index collection in the folder moves (`collection` must be one of them), each with its
    `<name>_files` records, ids, vectors and payloads unchanged. The new index is built in
    `<path>.edge-migrating` (resumable if interrupted) and only when every collection is complete and
    counted is the old folder renamed `<path>.pre-edge` and the new one put at `path`.
    """
    from caprl_index.store.edge import EdgeEngine

    path = Path(path)
    staging = path.with_name(path.name + MIGRATING)
    if not path.exists() and (staging / _DONE_MARK).exists():
        return _finish(path, staging)  # a run that stopped between its two renames
    if not is_legacy_local(path):
        raise StoreError(f"{path} is not an index folder of the previous caprl-index format; nothing to migrate.")
    names = _legacy_collections(path)
    if collection not in names:
        raise StoreError(
            f"the old index folder {path} has no caprl-index collection {collection!r} (it has: "
            f"{', '.join(names) or 'none'}). Pass the right --collection."
        )
    client = _open_legacy(path)
    points = records = 0
    try:
        for name in names:
            dst = EdgeEngine(staging, name)
            try:
                copied = _migrate_one(client, name, dst, staging, on_progress)
            finally:
                dst.close()
            points, records = points + copied[0], records + copied[1]
    finally:
        client.close()
    mark = {"from": str(path), "collections": names, "points": points, "records": records}
    (staging / _DONE_MARK).write_text(json.dumps(mark), encoding="utf-8")
    return _finish(path, staging)


def _migrate_one(
    client: Any, name: str, dst: Engine, staging: Path, on_progress: Callable[[int], None] | None
) -> tuple[int, int]:
    from caprl_index.store.server import ServerEngine

    src = ServerEngine(client, name, describe=f"old index folder collection {name!r}")
    copy_index(src, dst, on_progress=on_progress, state_file=staging / f"{name}.copy-state.json")
    want, got = (src.count(), len(src.records())), (dst.count(), len(dst.records()))
    if want != got:
        raise StoreError(
            f"migrating collection {name!r} copied {got[0]} points and {got[1]} file records of {want[0]} and "
            f"{want[1]}; the old folder is untouched. Run `caprl-index migrate` again to resume."
        )
    return got


def _finish(path: Path, staging: Path) -> MigrationResult:
    mark = json.loads((staging / _DONE_MARK).read_text(encoding="utf-8"))
    old = path.with_name(path.name + PRE_EDGE)
    n = 1
    while old.exists() and path.exists():  # an earlier migration's leftovers stay where they are
        n += 1
        old = path.with_name(f"{path.name}{PRE_EDGE}-{n}")
    if path.exists():
        os.rename(path, old)
    os.rename(staging, path)
    (path / _DONE_MARK).unlink()
    names = tuple(mark["collections"])
    return MigrationResult(names, int(mark["points"]), int(mark["records"]), old)


def _legacy_collections(path: Path) -> list[str]:
    """The caprl-index point collections of an old folder: a `text-dense` vector, not a records collection."""
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    out = []
    for name, config in sorted((meta.get("collections") or {}).items()):
        vectors = config.get("vectors")
        if not name.endswith(RECORDS_SUFFIX) and isinstance(vectors, dict) and "text-dense" in vectors:
            out.append(name)
    return out


def _open_legacy(path: Path) -> Any:
    from qdrant_client import QdrantClient

    from caprl_index.store.folder_lock import in_use_message

    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreError(in_use_message(path)) from exc
        raise StoreError(f"cannot open the old index folder {path}: {exc}") from exc
