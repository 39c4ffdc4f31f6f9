"""Removing the images of what left the index: replaced file versions, deleted and pruned files.

The points about to go are read first (`doomed`); once they are deleted, a page folder of a file version
that no record keeps is removed, and a crop that no remaining point refers to (crops are shared: the same
logo on many files) is removed. A crash in between leaves unreferenced images behind, never a point without
its image. With several ingest machines on one server and one image folder, a crop removed here may be one
another machine is about to reference (it skipped writing it because it existed): keep images on a store
that only one writer collects, or accept that rare case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from caprl_index.evidence.store import ImageStore

if TYPE_CHECKING:
    from caprl_index.store import QdrantStore, StoredPoint


@dataclass
class Doomed:
    """Images that the points being deleted referred to."""

    versions: set[str] = field(default_factory=set)  # file_sha256 of page renders
    crops: dict[str, str] = field(default_factory=dict)  # image_sha256 -> image_uri


def doomed(points: Iterable[StoredPoint]) -> Doomed:
    out = Doomed()
    for p in points:
        if p.payload.get("page_image_uri"):
            out.versions.add(str(p.payload.get("file_sha256", "")))
        sha, uri = p.payload.get("image_sha256"), p.payload.get("image_uri")
        if sha and uri:
            out.crops[str(sha)] = str(uri)
    return out


def remove_unreferenced(gone: Doomed, store: QdrantStore, images: ImageStore) -> int:
    """Delete the images in `gone` that nothing in the index refers to any more; returns how many."""
    from caprl_index.store import PointFilter

    kept = {r.file_sha256 for r in store.records().values() if r.complete}
    removed = 0
    for version in gone.versions - kept:
        if version and store.count(PointFilter(file_sha256=version)) == 0:
            for key in list(images.keys(f"pages/{version}/")):
                images.delete(key)
                removed += 1
    for sha, uri in gone.crops.items():
        if store.count(PointFilter(image_sha256s=(sha,))) == 0:
            images.delete(uri)
            removed += 1
    return removed


def remove_file(store: QdrantStore, images: ImageStore | None, file_path: str) -> None:
    """Delete a file's points and record, then the images only it referred to."""
    from caprl_index.store import PointFilter

    gone = doomed(store.points(PointFilter(file_paths=(file_path,)))) if images is not None else Doomed()
    store.delete_file(file_path)
    if images is not None:
        remove_unreferenced(gone, store, images)
