"""LlamaIndex `MetadataFilters` → the store's `PointFilter`.

What the store can filter on, and how (AND of any of these; nested AND groups are flattened):

    kind          ==  !=  in  nin     (text | figure | page)
    figure_type   ==  in
    file_path     ==  in
    file_name     ==  in              (resolved to paths through the file records)
    file_sha256   ==
    page          ==  >  >=  <  <=
    doc_id, ref_doc_id, document_id   ==  in

Anything else (OR, NOT, other keys or operators) raises `UnsupportedFilter` naming what is supported: a
filter silently dropped would return results the caller excluded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from caprl_index.errors import ConfigError
from caprl_index.store import PointFilter

if TYPE_CHECKING:
    from caprl_index.store import QdrantStore

KINDS = ("text", "figure", "page")
_OPS: dict[str, tuple[FilterOperator, ...]] = {
    "kind": (FilterOperator.EQ, FilterOperator.NE, FilterOperator.IN, FilterOperator.NIN),
    "figure_type": (FilterOperator.EQ, FilterOperator.IN),
    "file_path": (FilterOperator.EQ, FilterOperator.IN),
    "file_name": (FilterOperator.EQ, FilterOperator.IN),
    "file_sha256": (FilterOperator.EQ,),
    "page": (FilterOperator.EQ, FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE),
    "doc_id": (FilterOperator.EQ, FilterOperator.IN),
}
_DOC_ID_KEYS = ("doc_id", "ref_doc_id", "document_id")
NOTHING = False  # a filter no point can match: callers return no results without asking the store


class UnsupportedFilter(ConfigError):
    """A LlamaIndex metadata filter the caprl-index store cannot express."""


@dataclass(frozen=True)
class FilterSpec:
    """A translated filter; `file_names` still need the file records to become paths (`resolve`)."""

    point: PointFilter = field(default_factory=PointFilter)
    file_names: frozenset[str] | None = None
    impossible: bool = False  # contradictory conditions (kind == text AND kind == figure)

    def resolve(self, store: QdrantStore) -> PointFilter | bool | None:
        """The store filter, None for no condition, or NOTHING (runs on the store's thread)."""
        if self.impossible:
            return NOTHING
        point: PointFilter | bool | None = self.point
        if self.file_names is not None:
            paths = tuple(p for p in store.records() if p.rsplit("/", 1)[-1] in self.file_names)
            point = merge(point, PointFilter(file_paths=paths))
        if not isinstance(point, PointFilter):
            return point
        return None if point.empty else point


def translate(
    filters: MetadataFilters | None,
    *,
    doc_ids: Sequence[str] | None = None,
    node_ids: Sequence[str] | None = None,
) -> FilterSpec:
    """`filters` (plus a query's `doc_ids` / `node_ids`) as a FilterSpec; UnsupportedFilter when it cannot be."""
    spec = FilterSpec(point=PointFilter(doc_ids=_tuple(doc_ids), ids=_tuple(node_ids)))
    for f in _flatten(filters):
        spec = _add(spec, f)
    return spec


def merge(a: PointFilter | bool | None, b: PointFilter | bool | None) -> PointFilter | bool | None:
    """Both filters at once (AND); NOTHING when they cannot both hold."""
    if a is NOTHING or b is NOTHING:
        return NOTHING
    if not isinstance(a, PointFilter) or not isinstance(b, PointFilter):
        return a if isinstance(a, PointFilter) else b
    values: dict[str, Any] = {}
    for name in ("kinds", "file_paths", "figure_types", "doc_ids", "ids"):
        both = _intersect(getattr(a, name), getattr(b, name))
        if both == ():
            return NOTHING
        values[name] = both
    if None not in (a.file_sha256, b.file_sha256) and a.file_sha256 != b.file_sha256:
        return NOTHING
    lo = max((p for p in (a.page_from, b.page_from) if p is not None), default=None)
    hi = min((p for p in (a.page_to, b.page_to) if p is not None), default=None)
    if lo is not None and hi is not None and lo > hi:
        return NOTHING
    return PointFilter(
        **values,
        file_sha256=a.file_sha256 or b.file_sha256,
        page_from=lo,
        page_to=hi,
        exclude_ids=tuple(dict.fromkeys(a.exclude_ids + b.exclude_ids)),
    )


def _flatten(filters: MetadataFilters | None) -> Iterable[MetadataFilter]:
    if filters is None:
        return
    if filters.condition not in (None, FilterCondition.AND) and len(filters.filters) > 1:
        raise UnsupportedFilter(
            f"caprl-index filters combine conditions with AND only (got {filters.condition.value.upper()}); "
            "run one query per alternative, or use an IN filter on a single key (kind, figure_type, file_path)"
        )
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            yield from _flatten(f)
        else:
            yield f


def _add(spec: FilterSpec, f: MetadataFilter) -> FilterSpec:
    key = "doc_id" if f.key in _DOC_ID_KEYS else f.key
    op = f.operator
    if op not in _OPS.get(key, ()):
        raise UnsupportedFilter(_unsupported(f))
    if key == "file_name":
        names = frozenset(_values(f))
        both = names if spec.file_names is None else spec.file_names & names
        return dataclasses.replace(spec, file_names=both, impossible=spec.impossible or not both)
    merged = merge(spec.point, _point(key, op, f))
    if merged is NOTHING:
        return dataclasses.replace(spec, impossible=True)
    assert isinstance(merged, PointFilter) or merged is None
    return dataclasses.replace(spec, point=merged or PointFilter())


def _point(key: str, op: FilterOperator, f: MetadataFilter) -> PointFilter:
    values = _values(f)
    if key == "kind":
        kinds = values if op in (FilterOperator.EQ, FilterOperator.IN) else [k for k in KINDS if k not in values]
        return PointFilter(kinds=tuple(kinds))
    if key == "figure_type":
        return PointFilter(figure_types=tuple(values))
    if key == "file_path":
        return PointFilter(file_paths=tuple(values))
    if key == "file_sha256":
        return PointFilter(file_sha256=str(values[0]))
    if key == "doc_id":
        return PointFilter(doc_ids=tuple(values))
    return _page(op, f)


def _page(op: FilterOperator, f: MetadataFilter) -> PointFilter:
    try:
        page = float(f.value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnsupportedFilter(f"page filter needs a number, got {f.value!r}") from None
    # Pages are whole numbers: a strict bound moves to the next one (page > 2.5 means page >= 3).
    exact = page.is_integer()
    if op == FilterOperator.EQ:
        return PointFilter(page_from=int(page), page_to=int(page)) if exact else PointFilter(page_from=1, page_to=0)
    if op in (FilterOperator.GT, FilterOperator.GTE):
        first = int(page) + 1 if op == FilterOperator.GT or not exact else int(page)
        return PointFilter(page_from=first if page >= 0 else None)
    last = int(page) - 1 if op == FilterOperator.LT and exact else int(page)
    return PointFilter(page_to=last)


def _values(f: MetadataFilter) -> list[Any]:
    if f.operator in (FilterOperator.IN, FilterOperator.NIN):
        if not isinstance(f.value, list | tuple):
            raise UnsupportedFilter(f"{f.key} {f.operator.value} needs a list of values, got {f.value!r}")
        return list(f.value)
    return [f.value]


def _tuple(values: Sequence[str] | None) -> tuple[str, ...] | None:
    # An empty list means "no condition" to LlamaIndex: VectorStoreIndex passes node_ids=[] when it keeps
    # no node list of its own (every index over a vector store that stores text).
    return tuple(values) if values else None


def _intersect(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if a is None or b is None:
        return a if b is None else b
    keep = set(b)
    return tuple(v for v in a if v in keep)


def _unsupported(f: MetadataFilter) -> str:
    supported = "; ".join(f"{k} {' '.join(o.value for o in ops)}" for k, ops in _OPS.items())
    return (
        f"the caprl-index store cannot filter on {f.key!r} with {f.operator.value!r}. Supported: {supported} "
        "(doc_id also as ref_doc_id/document_id). For other payload filters, query a server-mode collection "
        "with the stock QdrantVectorStore."
    )
