"""searchset and history Bundles with paging links (R4 bundle.html, http.html#history)."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import request

from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response
from fhir_server.errors import BadRequest, Gone, Issue, not_found, operation_outcome
from fhir_server.search.runner import SearchPage
from fhir_server.search.shaping import shape
from fhir_server.storage.store import ResourceStore

MAX_HISTORY_COUNT = 1000


def _link(relation: str, url: str, query: list[tuple[str, str]], offset: int | None) -> dict:
    pairs = [(k, v) for k, v in query if k != "_offset"]
    if offset is not None and offset > 0:
        pairs.append(("_offset", str(offset)))
    return {"relation": relation, "url": f"{url}?{urlencode(pairs)}" if pairs else url}


def paging_links(url, query, offset, count, total) -> list[dict]:
    links = [_link("self", url, query, offset)]
    if total is not None and count > 0 and offset + count < total:
        links.append(_link("next", url, query, offset + count))
    if offset > 0 and count > 0:
        links.append(_link("previous", url, query, max(offset - count, 0)))
    return links


def search_bundle(page: SearchPage, url: str, query: list[tuple[str, str]]) -> dict:
    req = page.request
    summary = getattr(req, "summary", None)
    elements = getattr(req, "elements", None)
    bundle: dict = {"resourceType": "Bundle", "id": ids.new_id(), "type": "searchset"}
    bundle["meta"] = {"lastUpdated": ids.instant(ids.now_us())}
    if page.total is not None and (getattr(req, "total", None) != "none" or summary == "count"):
        bundle["total"] = page.total
    bundle["link"] = paging_links(url, query, page.offset, page.count, page.total)
    root = base_url()
    entries = [
        {
            "fullUrl": f"{root}/{r['resourceType']}/{r['id']}",
            "resource": shape(r, summary, elements),
            "search": {"mode": "match"},
        }
        for r in page.matches
    ]
    entries += [
        {
            "fullUrl": f"{root}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "include"},
        }
        for r in page.included
    ]
    if page.damaged:
        note = (
            "Integrity failure: left out of this page, their stored copies failed "
            f"authentication (altered in the database): {', '.join(page.damaged)}"
        )
        entries.append(_outcome_entry(Issue("exception", note, severity="error")))
    if page.unknown:
        note = f"Ignored unknown or unsupported search parameters: {', '.join(page.unknown)}"
        entries.append(_outcome_entry(Issue("not-supported", note, severity="warning")))
    if entries:
        bundle["entry"] = entries
    return bundle


def _outcome_entry(issue: Issue) -> dict:
    """A ``search.mode = outcome`` entry: its OperationOutcome has no id, so its fullUrl
    is a ``urn:uuid:`` (every searchset entry has one, R4 bundle.html#bundle-unique)."""
    return {
        "fullUrl": f"urn:uuid:{ids.new_id()}",
        "resource": operation_outcome([issue]),
        "search": {"mode": "outcome"},
    }


def history_bundle(
    store: ResourceStore,
    res_type: str | None = None,
    res_id: str | None = None,
    confine: dict | None = None,
):
    """``confine``: ``store.history`` keywords from :func:`guard.history`."""
    count = _int_arg("_count", 50, MAX_HISTORY_COUNT)
    offset = _int_arg("_offset", 0, None)
    since = _instant_arg("_since")
    at_most = _instant_arg("_at")
    total, rows = store.history(
        res_type,
        res_id,
        since_us=since,
        at_most_us=at_most,
        count=count,
        offset=offset,
        **(confine or {}),
    )
    root = base_url()
    entries = []
    policy = guard.policy()
    kind = (
        Interaction.HISTORY_INSTANCE
        if res_id
        else Interaction.HISTORY_TYPE
        if res_type
        else Interaction.HISTORY_SYSTEM
    )
    if policy.may_withhold(policy.confinement):
        # The index cannot tell what consent withholds: no total is given, rather
        # than one that counts withheld versions.
        total = None
    for row in rows:
        entry: dict = {"fullUrl": f"{root}/{row.res_type}/{row.res_id}"}
        url = f"{row.res_type}/{row.res_id}"
        if row.deleted:
            if not policy.deletion_visible(row.res_type, row.res_id, row.version_id):
                continue
            entry["request"] = {"method": "DELETE", "url": url}
            entry["response"] = {"status": "204 No Content"}
        else:
            try:
                entry["resource"] = store.open_version(row)
            except Gone:
                if res_id:
                    raise  # the resource's own history: erased, as its read answers
                total = None  # an erased patient's versions ($erase): nothing to serve
                continue
            if not policy.consented(kind, entry["resource"], policy.confinement):
                total = None  # withheld by consent: no count leaks
                continue
            policy.saw(entry["resource"])
            method = "POST" if row.method == "POST" else "PUT"
            entry["request"] = {"method": method, "url": row.res_type if method == "POST" else url}
            status = "201 Created" if row.version_id == 1 else "200 OK"
            entry["response"] = {"status": status}
        entry["response"]["etag"] = f'W/"{row.version_id}"'
        entry["response"]["lastModified"] = ids.instant(row.last_updated_us)
        entries.append(entry)
    if res_id and rows and not entries:
        raise not_found(res_type, res_id)  # every version withheld: as a read answers
    path = "/".join(p for p in (root, res_type, res_id) if p) + "/_history"
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "_format"]
    bundle = {
        "resourceType": "Bundle",
        "id": ids.new_id(),
        "type": "history",
        "total": total,
        "link": paging_links(path, query, offset, count, total),
        "entry": entries,
    }
    if total is None:
        del bundle["total"]
    return fhir_response(bundle)


def _int_arg(name: str, default: int, maximum: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = ids.parse_version(raw, name)
    return min(value, maximum) if maximum else value


def _instant_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    value = ids.parse_instant_us(raw)
    if value is None:
        raise BadRequest(f"{name} must be a FHIR instant, not {raw!r}.")
    return value
