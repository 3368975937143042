"""Run a parsed search against the store: SQL plan, optional Python post-filter, paging.

The SQL plan (``sql.build_search``) selects current resources by blind
index. Where the blind index can only approximate (``:contains``, long
prefixes, sorting by a hashed value), candidates are decrypted and filtered or
sorted here, so totals and pages stay exact either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from fhir_server.search.includes import included_resources
from fhir_server.search.query import parse_search
from fhir_server.search.sql import build_search
from fhir_server.storage.db import compartments, resources
from fhir_server.storage.store import ResourceStore

DEFAULT_COUNT = 20
MAX_COUNT = 1000


@dataclass
class SearchPage:
    request: object  # query.SearchRequest
    total: int | None
    matches: list[dict] = field(default_factory=list)
    included: list[dict] = field(default_factory=list)
    offset: int = 0
    count: int = DEFAULT_COUNT
    # "Type/id" of matches that failed their integrity checks and were left out.
    damaged: list[str] = field(default_factory=list)

    @property
    def unknown(self) -> list[str]:
        return list(getattr(self.request, "unknown", []) or [])


def run_search(
    store: ResourceStore,
    res_type: str,
    query: list[tuple[str, str]],
    *,
    strict: bool = False,
    conn: Connection | None = None,
    compartment_patient: str | None = None,
    include_filter: Callable[[list[dict]], list[dict]] | None = None,
    admit: Callable[[dict], bool] | None = None,
) -> SearchPage:
    """``compartment_patient`` confines the matches, the resources that chains and
    ``_has`` look at, and the included ones (so totals count only those);
    ``include_filter`` screens the included resources further (access policy).

    ``admit``: a decision on each decrypted match (the access gate's, where consent
    may withhold a match): every candidate is decided before counting and paging,
    so ``total`` and ``_summary=count`` count only what is admitted."""
    request = parse_search(res_type, query, strict=strict)
    within = None
    if compartment_patient is not None:
        within = partial(in_compartment, patient_id=compartment_patient)
    plan = build_search(request, store.blind, within)
    count = page_size(request)
    offset = max(int(getattr(request, "offset", 0) or 0), 0)
    selection = plan.select
    counting = plan.count_select
    if within is not None:
        selection = selection.where(within(resources))
        counting = _count_of(selection)
    python_sort = getattr(plan, "python_sort", None)
    damaged: list[str] = []  # a damaged row is named, and the rest still served

    def load(pks: list[int], c) -> list[dict]:
        if compartment_patient is None:
            return store.load_current(pks, c, damaged)
        return store.load_in_compartment(pks, compartment_patient, c, damaged)

    with store.connect(conn) as c:
        if plan.postfilter is not None or python_sort is not None or admit is not None:
            candidates = load([r[0] for r in c.execute(selection)], c)
            if plan.postfilter is not None:
                candidates = [r for r in candidates if plan.postfilter(r)]
            if admit is not None:
                candidates = [r for r in candidates if admit(r)]
            if python_sort is not None:
                candidates = python_sort(candidates)
            total = len(candidates)
            page = [] if _summary(request) == "count" else candidates[offset : offset + count]
        else:
            total = c.execute(counting).scalar_one()
            page = []
            if _summary(request) != "count" and count > 0:
                pks = [r[0] for r in c.execute(selection.limit(count).offset(offset))]
                page = load(pks, c)
        included = []
        if page:
            included = included_resources(store, request, page, c, within)
        if included and include_filter is not None:
            included = include_filter(included)
    if damaged and plan.postfilter is None and python_sort is None and admit is None:
        total = None  # the index counted rows that cannot be served
    return SearchPage(request, total, page, included, offset, count, damaged)


def in_compartment(table, patient_id: str):
    """SQL condition: ``table``'s current resource is in ``patient_id``'s compartment."""
    return table.c.pk.in_(
        select(compartments.c.resource_pk).where(compartments.c.patient_id == patient_id)
    )


def _count_of(selection):
    return select(func.count()).select_from(selection.order_by(None).subquery())


def _summary(request) -> str | None:
    return getattr(request, "summary", None)


def page_size(request) -> int:
    count = getattr(request, "count", None)
    if count is None:
        return DEFAULT_COUNT
    return max(0, min(int(count), MAX_COUNT))
