"""``GET /fhir/{type}/{id}/_history/{vid}/$provenance``: the anchoring proof of a version;
and ``_anchor-provenance=true`` on any searchset (searches, ``$everything``), which
adds the Provenance of every anchored version the page holds.

Core: :mod:`fhir_server.operations.provenance`. Access: :func:`guard.verify_stored`
(read access to the version); the searchset itself was decided by its own route.
"""

from __future__ import annotations

import json

from flask import request

from fhir_server import ids
from fhir_server.access.wide_search import CONTROL
from fhir_server.api import guard, rest
from fhir_server.api.compartment import search_query
from fhir_server.api.http import base_url, fhir_response, strict_handling
from fhir_server.api.operations.base import INTEGRITY, node
from fhir_server.api.searchset import search_bundle
from fhir_server.errors import FHIRError, not_found
from fhir_server.operations import provenance as core

bp = INTEGRITY
CORE = core
# The routes whose searchset entries the gate decided one by one: the proofs are
# added for those entries only. A searchset Bundle a client stored and reads back
# names whatever its author wrote, readable or not.
GATED_SEARCHSETS = frozenset(
    {
        "rest.search",
        "compartment.system_search",
        "compartment.compartment_search",
        "integrity.provenance_search",
        "everything.patient_everything",
    }
)
# Parameters that shape a Provenance search without selecting: with only these beside
# ``target``, the anchoring Provenances match it too.
NOT_CRITERIA = frozenset({*CONTROL, "_include", "_revinclude", "_sort"})


@bp.get("/<res_type>/<res_id>/_history/<int(max=2147483647):version_id>/$provenance")
def provenance(res_type: str, res_id: str, version_id: int):
    guard.verify_stored(res_type, res_id, version_id)
    return fhir_response(core.provenance_of(node(), res_type, res_id, version_id))


@bp.after_app_request
def _attach_provenance(response):
    if request.endpoint not in GATED_SEARCHSETS:
        return response  # a stored Bundle (or any other body) was not decided entry by entry
    asked = request.args.get(core.PROVENANCE_PARAM) in ("true", "1")
    revinclude = "Provenance:target" in request.args.getlist("_revinclude")
    if not (asked or revinclude) or response.status_code != 200:
        return response
    if not (response.mimetype or "").endswith("json"):
        return response
    body = json.loads(response.get_data())
    if core.with_provenance(node(), body, base_url()):
        response.set_data(json.dumps(body, ensure_ascii=False).encode())
    return response


# -- GET Provenance/anchor-... ----------------------------------------------------
@bp.get(f"/Provenance/{core.ISSUED_PREFIX}<tail>")
def issued_provenance(tail: str):
    """The anchoring Provenance a searchset's ``fullUrl`` names, read like the version
    it proves (404 exactly like a missing one where that version is not readable);
    a stored Provenance that happens to have such an id is read as any other."""
    res_id = ids.check_id(core.ISSUED_PREFIX + tail)
    found = core.issued_provenance(node(), res_id)
    if found is None:
        return rest.read("Provenance", res_id)
    provenance, (res_type, target_id, version_id) = found
    try:
        guard.verify_stored(res_type, target_id, version_id)
    except FHIRError:
        raise not_found("Provenance", res_id) from None
    return fhir_response(provenance)


# -- Provenance?target=... -------------------------------------------------------
@bp.get("/Provenance")
@bp.post("/Provenance/_search")
def provenance_search():
    """A Provenance search; one by ``target`` alone also finds the node's anchoring
    Provenances of the target's versions that the caller may read (they are issued
    from the anchoring journal, not stored), listed after the stored ones."""
    query = search_query()
    page = guard.search("Provenance", query, strict=strict_handling())
    targets = [v for k, values in query if k == "target" for v in values.split(",")]
    only_target = all(k == "target" or k in NOT_CRITERIA for k, _ in query)
    if targets and only_target and page.total is not None:
        issued = core.anchoring_provenances(node(), _readable_versions(targets))
        _append(page, issued)
    return fhir_response(search_bundle(page, f"{base_url()}/Provenance", query))


def _readable_versions(targets: list[str]) -> list[tuple[str, str, int]]:
    versions = []
    for value in targets:
        parsed = core.parse_target(value, base_url())
        if parsed is None:
            continue  # another server's record: no proof of this node's
        res_type, res_id, version_id = parsed
        try:
            if version_id is None:
                current = guard.read(res_type, res_id)
                wanted = range(1, int(current["meta"]["versionId"]) + 1)
            else:
                wanted = range(version_id, version_id + 1)
            for number in wanted:
                guard.verify_stored(res_type, res_id, number)
                versions.append((res_type, res_id, number))
        except FHIRError:
            continue  # unreadable (or absent): nothing of it is listed, nor said
    return versions


def _append(page, issued: list[dict]) -> None:
    """Page the issued Provenances after the stored matches: same total, same window."""
    stored_total = page.total
    page.total = stored_total + len(issued)
    if getattr(page.request, "summary", None) == "count":
        return
    room = page.count - len(page.matches)
    start = max(0, page.offset - stored_total)
    if room > 0:
        page.matches = [*page.matches, *issued[start : start + room]]
