"""Images not to index twice: page furniture (a logo on every page) and repeats of a picture.

Runs once per document, in ``prepare``; ``parse_pages`` then skips those xrefs on each page, so the
result does not depend on how pages are split among workers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from caprl_index.figures import geometry as g
from caprl_index.figures.content import placed_images

FURNITURE_PAGES = 3  # an image shown on this many pages is page furniture (logo, header art)
MIN_CANDIDATE_SIDE = 28.0  # smaller images are never figures on their own
MAX_CHECKS = 12  # pages checked per repeated image reference
LARGE_SHARE = 0.2  # a repeated image this big (share of the page) is content, indexed once


def image_repeats(doc: Any) -> tuple[set[int], dict[int, int]]:
    """Images shown on many pages (furniture) and, for the others, the first page showing them.

    Only images that several pages *reference* are checked, on those pages, for being *shown*
    there (some PDFs share one resource dictionary among all pages). Identity is the raw stream
    digest, so a logo stored under several xrefs is caught too.
    """
    referenced: dict[int, list[int]] = {}
    for pno in range(doc.page_count):
        for item in doc.get_page_images(pno):
            referenced.setdefault(int(item[0]), []).append(pno)
    candidates = {x: pages for x, pages in referenced.items() if len(set(pages)) > 1}
    if not candidates:
        return set(), {}
    shown, large = _shown_on(doc, candidates)
    pages_of: dict[str, set[int]] = {}
    xrefs_of: dict[str, set[int]] = {}
    for xref, pages in shown.items():
        raw = doc.xref_stream_raw(xref) or b""
        key = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        pages_of.setdefault(key, set()).update(pages)
        xrefs_of.setdefault(key, set()).add(xref)
    furniture: set[int] = set()
    first: dict[int, int] = {}
    for key, pages in pages_of.items():
        for xref in xrefs_of[key]:
            if len(pages) >= FURNITURE_PAGES and xref not in large:
                furniture.add(xref)
            elif pages:
                first[xref] = min(pages)
    return furniture, first


def _shown_on(doc: Any, candidates: dict[int, list[int]]) -> tuple[dict[int, set[int]], set[int]]:
    """For each candidate xref, the pages (of those referencing it) where it is actually drawn.

    Checking stops early for an image already seen on FURNITURE_PAGES pages; an image referenced by
    many pages but drawn on none of the first few is left out (shared resources, not a repeat).
    Also returns the images drawn large somewhere: content shown again, not furniture.
    """
    shown: dict[int, set[int]] = {x: set() for x in candidates}
    checked: dict[int, int] = dict.fromkeys(candidates, 0)
    large: set[int] = set()
    by_page: dict[int, list[int]] = {}
    for xref, pages in candidates.items():
        for pno in sorted(set(pages)):
            by_page.setdefault(pno, []).append(xref)
    for pno in sorted(by_page):
        wanted = [x for x in by_page[pno] if len(shown[x]) < FURNITURE_PAGES and checked[x] < MAX_CHECKS]
        if not wanted:
            continue
        page = doc[pno]
        page_area = page.rect.width * page.rect.height
        drawn: dict[int, float] = {}
        for image in placed_images(page):
            if min(g.width(image.bbox), g.height(image.bbox)) >= MIN_CANDIDATE_SIDE:
                drawn[image.xref] = max(drawn.get(image.xref, 0.0), g.area(image.bbox) / page_area)
        for xref in wanted:
            checked[xref] += 1
            if xref in drawn:
                shown[xref].add(pno)
                if drawn[xref] >= LARGE_SHARE:
                    large.add(xref)
    return {x: pages for x, pages in shown.items() if pages}, large
