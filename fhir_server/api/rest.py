"""Type- and instance-level interactions: /fhir/{type}[/{id}[/_history[/{vid}]]]."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from federation.assertion import country_of
from federation.provenance import write_back_provenance
from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.api import guard
from fhir_server.api.compartment import search_query
from fhir_server.api.http import (
    base_url,
    fhir_response,
    negotiate,
    parse_etag,
    read_json_body,
    strict_handling,
    version_headers,
    wants_return,
)
from fhir_server.api.searchset import history_bundle, search_bundle
from fhir_server.errors import BadRequest
from fhir_server.resource_types import check_type
from fhir_server.rest import interactions, patch
from fhir_server.rest.interactions import Result
from fhir_server.validation import validate_resource

bp = Blueprint("rest", __name__, url_prefix="/fhir")


def store():
    return current_app.extensions["phrx.node"].store


@bp.before_request
def _negotiate():
    negotiate()


def _query_pairs() -> list[tuple[str, str]]:
    pairs = list(request.args.items(multi=True))
    if request.method == "POST" and request.form:
        pairs.extend(request.form.items(multi=True))
    return [(k, v) for k, v in pairs if k != "_format"]


def _written(result: Result, status: int | None = None):
    written = result.written
    headers = version_headers(
        written.res_type, written.res_id, written.version_id, written.last_updated_us
    )
    choice = wants_return()
    body = result.resource if choice == "representation" else None
    if choice == "OperationOutcome":
        body = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
        }
    return fhir_response(body, status or result.status, headers)


# -- type level -----------------------------------------------------------------
@bp.get("/<res_type>")
@bp.post("/<res_type>/_search")
def search(res_type: str):
    check_type(res_type)
    query = search_query()
    page = guard.search(res_type, query, strict=strict_handling())
    return fhir_response(search_bundle(page, f"{base_url()}/{res_type}", query))


@bp.post("/<res_type>")
def create(res_type: str):
    check_type(res_type)
    criteria = _create_criteria()
    policy = guard.write(Interaction.CREATE, res_type)
    body = validate_resource(read_json_body(), expected_type=res_type)
    body = {**body, "id": ids.new_id()}  # the server assigns ids on create
    with store().unit_of_work(prepare=[body], policy=policy) as writer:
        result = interactions.create(writer, body, criteria)
        _record_write_back(writer, result)
    return _written(result)


def _record_write_back(writer, result: Result) -> None:
    """A record another country's node wrote for its clinician gets, in the same
    transaction, a Provenance naming them, that node and its country (the node's
    own record: not subject to the gateway's scopes)."""
    access = g.get("access")
    if result.status != 201 or access is None or country_of(access.client_id) is None:
        return
    written = result.written
    target = f"{written.res_type}/{written.res_id}/_history/{written.version_id}"
    subject = ((result.resource or {}).get("subject") or {}).get("reference")
    patient = subject if isinstance(subject, str) and subject.startswith("Patient/") else None
    provenance = write_back_provenance(target, access.context or {}, patient)
    if provenance is not None:
        writer.create(provenance, res_id=provenance["id"], checked=False)


# Formatting parameters (search/query.py ignores them too): never criteria.
_NOT_CRITERIA = frozenset({"_format", "_pretty"})


def _create_criteria() -> list[tuple[str, str]] | None:
    """A conditional create's criteria: ``If-None-Exist``, or the search parameters of
    ``POST [type]?criteria`` (fhirpy's ``get_or_create``); both must then agree."""
    query = [(k, v) for k, v in request.args.items(multi=True) if k not in _NOT_CRITERIA]
    header = request.headers.get("If-None-Exist")
    if not header:
        return query or None
    criteria = interactions.parse_query(header)
    if query and sorted(query) != sorted(criteria):
        raise BadRequest("If-None-Exist and the URL's search parameters name different criteria.")
    return criteria


@bp.put("/<res_type>")
def conditional_update(res_type: str):
    check_type(res_type)
    query = _query_pairs()
    if not query:
        raise BadRequest("PUT on a type needs search criteria (conditional update).")
    policy = guard.write(Interaction.UPDATE, res_type)
    body = validate_resource(read_json_body(), expected_type=res_type)
    new_id = body.get("id") or ids.new_id()  # used only if nothing matches
    with store().unit_of_work(prepare=[{**body, "id": new_id}], policy=policy) as writer:
        result = interactions.conditional_update(writer, res_type, query, body, new_id)
    return _written(result)


@bp.delete("/<res_type>")
def conditional_delete(res_type: str):
    check_type(res_type)
    query = _query_pairs()
    if not query:
        raise BadRequest("DELETE on a type needs search criteria (conditional delete).")
    with store().unit_of_work(policy=guard.write(Interaction.DELETE, res_type)) as writer:
        interactions.conditional_delete(writer, res_type, query)
    return fhir_response(None, 204)


@bp.get("/<res_type>/_history")
def type_history(res_type: str):
    check_type(res_type)
    return history_bundle(store(), res_type=res_type, confine=guard.history(res_type))


# -- instance level ---------------------------------------------------------------
@bp.get("/<res_type>/<res_id>")
def read(res_type: str, res_id: str):
    check_type(res_type)
    resource = guard.read(res_type, ids.check_id(res_id))
    headers = _meta_headers(resource)
    if request.headers.get("If-None-Match") == headers["ETag"]:
        return fhir_response(None, 304, headers)
    return fhir_response(resource, 200, headers)


@bp.put("/<res_type>/<res_id>")
def update(res_type: str, res_id: str):
    check_type(res_type)
    ids.check_id(res_id)
    policy = guard.write(Interaction.UPDATE, res_type)
    body = validate_resource(read_json_body(), expected_type=res_type)
    if_match = parse_etag(request.headers.get("If-Match"))
    # The very dict written is prepared (index rows, leaf) before the write lock;
    # a body naming another id gets its keys prepared under the URL id and a 400.
    staged = body if body.get("id") == res_id else {**body, "id": res_id}
    with store().unit_of_work(prepare=[staged], policy=policy) as writer:
        result = interactions.update(writer, res_type, res_id, body, if_match)
    return _written(result)


@bp.patch("/<res_type>/<res_id>")
def patch_instance(res_type: str, res_id: str):
    check_type(res_type)
    ids.check_id(res_id)
    policy = guard.write(Interaction.PATCH, res_type)
    content_type = patch.media_type(request.mimetype)
    document = patch.parse(content_type, read_json_body(patch.MEDIA_TYPES, resource=False))
    if_match = parse_etag(request.headers.get("If-Match"))
    limits = patch.Limits(
        current_app.config["PHRX_MAX_BODY_BYTES"], current_app.config["PHRX_MAX_JSON_DEPTH"]
    )
    result = patch.patch_resource(store(), policy, res_type, res_id, document, if_match, limits)
    return _written(result)


@bp.delete("/<res_type>/<res_id>")
def delete(res_type: str, res_id: str):
    check_type(res_type)
    ids.check_id(res_id)
    with store().unit_of_work(policy=guard.write(Interaction.DELETE, res_type)) as writer:
        interactions.delete(writer, res_type, res_id)
    return fhir_response(None, 204)


@bp.get("/<res_type>/<res_id>/_history")
def instance_history(res_type: str, res_id: str):
    check_type(res_type)
    ids.check_id(res_id)
    confine = guard.history(res_type, res_id)
    return history_bundle(store(), res_type=res_type, res_id=res_id, confine=confine)


@bp.get("/<res_type>/<res_id>/_history/<version_id>")
def vread(res_type: str, res_id: str, version_id: str):
    check_type(res_type)
    ids.check_id(res_id)
    resource = guard.vread(res_type, res_id, ids.parse_version(version_id))
    return fhir_response(resource, 200, _meta_headers(resource))


def _meta_headers(resource: dict) -> dict:
    meta = resource["meta"]
    updated = ids.parse_instant_us(meta["lastUpdated"]) or 0
    return {"ETag": f'W/"{meta["versionId"]}"', "Last-Modified": ids.http_date(updated)}
