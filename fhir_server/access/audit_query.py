"""The query of a search as the access log keeps it: names and ids, no clinical values.

Flask-free. AuditEvents are sealed under the node key and outlive a patient's
erasure (:mod:`fhir_server.storage.audit_store`), so what they record must not be clinical
content. A query such as ``Condition?patient=p1&code=F32.9`` says what was looked
for about whom; the log keeps its shape -- the parameter names, the ids of
reference parameters (``patient``, ``subject``: random server ids) and the
paging / shaping controls -- and replaces every other value (codes, names,
identifiers, dates, chained values) by a keyed digest, ``#`` plus 16 hex digits.
Equal values give equal digests, so repeated searches still show as such, but
the digest cannot be read back without the node's blind-index key.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fhir_server.search.params import params_for

# Result controls: they shape the answer, they say nothing about the patient.
CONTROLS = frozenset(
    {
        "_count",
        "_elements",
        "_format",
        "_id",
        "_include",
        "_revinclude",
        "_since",
        "_sort",
        "_summary",
        "_total",
        "_type",
        "_at",
        "_lastUpdated",
    }
)


def reduce(path: str, query: str, blind) -> str:
    """``query`` (as sent) of a request on ``path`` (relative to the FHIR base),
    with every value that is not an id or a control replaced by its digest."""
    if not query:
        return ""
    res_type = path.split("/", 1)[0]
    params = params_for(res_type)
    kept = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        kept.append((name, value if _is_id(name, params) else _digest(blind, name, value)))
    return urlencode(kept, safe="/:|,$")


def _is_id(name: str, params: dict) -> bool:
    base, _, modifier = name.partition(":")
    if base in CONTROLS:
        return True
    param = params.get(base)
    if param is None or param.type != "reference" or "." in name:
        return False  # unknown, not a reference, or a chain into another resource
    return not modifier or modifier[:1].isupper()  # subject:Patient, not :identifier


def _digest(blind, name: str, value: str) -> str:
    return "#" + blind.digest(f"audit-query/{name}", value).hex()[:16]
