"""Searches across resource types (R4 http.html#search): the system search
``GET [base]?params`` and a patient compartment's every type,
``GET [base]/Patient/{id}/*?params``.

Each type is searched through the one gate (``search_one``: the same function a
type-level search calls), so scopes, compartments and consent decide every match and
count exactly as they do there; this module only chooses the types and pages across
them. Types come from ``_type``, else every type stored (restricted, for a compartment,
to the compartment's types) that the caller may search.

A criterion must mean the same thing for every searched type: one that some type does
not define would be ignored for that type and return all of it, so it is refused
(name the types with ``_type``). ``_sort``, ``_include`` / ``_revinclude`` and
``_has`` are refused too: an order or an include across types is not defined here.
Results are ordered by type, then as each type's search orders them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fhir_server.errors import BadRequest, Forbidden
from fhir_server.resource_types import supported_types
from fhir_server.search.compartment import patient_compartment_params
from fhir_server.search.params import params_for
from fhir_server.search.query import parse_search
from fhir_server.search.runner import SearchPage, page_size

# Result parameters handled once for the whole search, not per type.
CONTROL = frozenset(
    {"_count", "_offset", "_summary", "_elements", "_total", "_format", "_anchor-provenance"}
)
COMMON = frozenset({"_id", "_lastUpdated"})
NOT_ACROSS_TYPES = ("_sort", "_include", "_revinclude", "_has", "_contained", "_containedType")

SearchOne = Callable[[str, list[tuple[str, str]]], SearchPage]


@dataclass
class WidePage:
    """A page over several types, shaped like :class:`SearchPage` for the Bundle."""

    request: object
    total: int | None
    matches: list[dict] = field(default_factory=list)
    included: list[dict] = field(default_factory=list)
    offset: int = 0
    count: int = 0
    damaged: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # none: unknown criteria are refused


def requested_types(query: list[tuple[str, str]]) -> list[str] | None:
    """The types named by ``_type`` (None when absent)."""
    named = [t.strip() for k, v in query if k == "_type" for t in v.split(",") if t.strip()]
    if not named and not any(k == "_type" for k, _ in query):
        return None
    if not named:
        raise BadRequest("_type names no resource type.")
    for res_type in named:
        if res_type not in supported_types():
            raise BadRequest(f"_type names {res_type!r}, not a resource type this server holds.")
    return list(dict.fromkeys(named))


def candidate_types(
    query: list[tuple[str, str]], stored: Iterable[str], compartment: str | None
) -> tuple[list[str], bool]:
    """(types to search, whether the caller named them)."""
    named = requested_types(query)
    types = named if named is not None else sorted(stored)
    if compartment is not None:
        types = [t for t in types if t == "Patient" or patient_compartment_params(t)]
    return types, named is not None


def check_criteria(query: list[tuple[str, str]], types: list[str], named: bool) -> None:
    for key, _value in query:
        name = key.split(":", 1)[0].split(".", 1)[0]
        if name in NOT_ACROSS_TYPES:
            raise BadRequest(f"{name} is not supported in a search across resource types.")
        if name in CONTROL or name in COMMON or name == "_type":
            continue
        lacking = [t for t in types if name not in params_for(t)]
        if lacking:
            hint = "" if named else " Name the types with _type."
            raise BadRequest(
                f"Search parameter {name!r} is not defined for {', '.join(lacking[:5])}"
                f"{' ...' if len(lacking) > 5 else ''}: it cannot apply across these types.{hint}"
            )


def search_across(
    search_one: SearchOne,
    query: list[tuple[str, str]],
    stored: Iterable[str],
    compartment: str | None = None,
) -> WidePage:
    """Search ``query`` across types; ``stored``: the types the store holds."""
    types, named = candidate_types(query, stored, compartment)
    check_criteria(query, types, named)
    criteria = [(k, v) for k, v in query if k not in CONTROL and k != "_type"]
    controls = [(k, v) for k, v in query if k in CONTROL and k not in ("_count", "_offset")]
    request = parse_search("Patient", [(k, v) for k, v in query if k in CONTROL], strict=True)
    count, offset = page_size(request), max(int(getattr(request, "offset", 0) or 0), 0)
    summary_count = getattr(request, "summary", None) == "count"
    page = WidePage(request, 0, offset=offset, count=count)
    skip, wanted, searched = offset, 0 if summary_count else count, 0
    for res_type in types:
        paging = [("_count", str(wanted)), ("_offset", str(skip))]
        try:
            found = search_one(res_type, [*criteria, *controls, *paging])
        except Forbidden:
            if named:
                raise  # the caller asked for this type by name
            continue  # a type the caller may not search is not part of "every type"
        searched += 1
        page.damaged += found.damaged
        if found.total is None or page.total is None:
            page.total = None
        else:
            page.total += found.total
        page.matches += found.matches
        wanted -= len(found.matches)
        skip = max(0, skip - (found.total or 0)) if found.total is not None else 0
    if not searched and types:
        raise Forbidden("This token may search none of the requested resource types.")
    return page
