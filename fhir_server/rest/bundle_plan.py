"""Planning the entries of a batch or transaction Bundle (R4 http.html#transaction):
the Bundle's own checks, and each entry's request read into a :class:`PlannedEntry`
(its method, target, resource and conditions) before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from fhir_server.errors import BadRequest, FHIRError, Issue
from fhir_server.rest import patch
from fhir_server.rest.entry_urls import EntryTarget, parse_entry_url
from fhir_server.rest.interactions import Result, parse_query

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
MAX_ENTRIES = 10_000


@dataclass
class PlannedEntry:
    index: int
    method: str
    target: EntryTarget
    resource: dict | None
    if_none_exist: str | None = None
    if_match: str | None = None
    full_url: str | None = None
    result: Result | None = None
    error: FHIRError | None = None
    extra: dict = field(default_factory=dict)


def check_bundle(bundle: dict) -> str:
    if bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base must carry a Bundle.", expression=["resourceType"])
    kind = bundle.get("type")
    if kind not in {"batch", "transaction"}:
        raise BadRequest(
            f"Bundle.type must be batch or transaction, not {kind!r}.", expression=["Bundle.type"]
        )
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be a list.", expression=["Bundle.entry"])
    if len(entries) > MAX_ENTRIES:
        raise BadRequest(f"A Bundle may hold at most {MAX_ENTRIES} entries.")
    _check_full_urls(entries)
    return kind


def _check_full_urls(entries: list) -> None:
    """bdl-7: "FullUrl must be unique in a bundle, or else entries with the same
    fullUrl must have different meta.versionId (except in history bundles)" -- a
    transaction resolves references by fullUrl, so a second entry would silently
    take the first one's place. A fullUrl is a uri: a list or object is refused
    too (hashed for that resolution, it was a 500)."""
    seen: set[tuple[str, object]] = set()
    for index, entry in enumerate(entries):
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if url is None:
            continue
        where = f"Bundle.entry[{index}].fullUrl"
        if not isinstance(url, str) or not url:
            raise BadRequest(f"{where} must be a uri (a non-empty string).", expression=[where])
        resource = entry.get("resource")
        meta = resource.get("meta") if isinstance(resource, dict) else None
        version = meta.get("versionId") if isinstance(meta, dict) else None
        key = (url, version if isinstance(version, str) else None)
        if key in seen:
            raise BadRequest(
                issues=[
                    Issue(
                        "invariant",
                        f"{where}: bdl-7: fullUrl {url[:200]!r} is already the fullUrl of an "
                        "earlier entry; fullUrl must be unique in a Bundle (but for other "
                        "versions of the same resource: meta.versionId)",
                        expression=(where,),
                    )
                ]
            )
        seen.add(key)


def plan_entry(index: int, entry: object, base_url: str) -> PlannedEntry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise BadRequest(f"{where} needs a request.", expression=[f"{where}.request"])
    request = entry["request"]
    method = str(request.get("method", "")).upper()
    if method not in METHOD_ORDER:
        raise BadRequest(
            f"{where}.request.method {method!r} is not supported.",
            expression=[f"{where}.request.method"],
        )
    target = parse_entry_url(request.get("url"), base_url, where)
    resource = entry.get("resource")
    if method == "PATCH":
        return _plan_patch(index, entry, target, where)
    if_none_exist = _if_none_exist(request.get("ifNoneExist"), method, target, where)
    if method in {"POST", "PUT"}:
        if not isinstance(resource, dict):
            raise BadRequest(f"{where} ({method}) needs a resource.", expression=[where])
        if resource.get("resourceType") != target.res_type:
            raise BadRequest(
                f"{where}: resource type does not match request.url.",
                expression=[f"{where}.resource"],
            )
    return PlannedEntry(
        index, method, target, resource, if_none_exist, request.get("ifMatch"), entry.get("fullUrl")
    )


def _if_none_exist(header: str | None, method: str, target: EntryTarget, where: str):
    """A POST to ``Type?criteria`` is a conditional create, like ``ifNoneExist``."""
    query = [(k, v) for k, v in target.query or [] if k not in ("_format", "_pretty")]
    if method != "POST" or not query:
        return header
    if header and sorted(parse_query(header)) != sorted(query):
        raise BadRequest(f"{where}: ifNoneExist and request.url name different criteria.")
    return urlencode(query)


def _plan_patch(index: int, entry: dict, target: EntryTarget, where: str) -> PlannedEntry:
    """A PATCH entry: ``Type/id`` and a Binary (JSON Patch) or Parameters (FHIRPath Patch);
    the resource it writes is made when the entry runs (:func:`_stage_patch`)."""
    if not target.res_id or target.query or target.version_id:
        raise BadRequest(f"{where}: a PATCH entry's request.url is Type/id.")
    document = patch.from_entry(entry.get("resource"), where)
    if_match = entry["request"].get("ifMatch")
    planned = PlannedEntry(index, "PATCH", target, None, None, if_match, entry.get("fullUrl"))
    planned.extra["patch"] = document
    return planned
