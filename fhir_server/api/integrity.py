"""HTTP routes of the anchoring operations: $anchor, $verify, $provenance.

Registered before the generic REST blueprint; Werkzeug ranks rules with more static
parts first anyway, so ``/fhir/Patient/1/$verify`` never reaches ``read``
(tests/anchoring/test_integrity_api.py checks both orders of registration).

Searchset Bundles (searches, ``$everything``) carry the Provenance of every anchored
version they contain when asked with ``_anchor-provenance=true``.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, request

from anchoring import journal
from anchoring.provenance import provenance_for, provenance_id, version_key_of
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response, negotiate, read_json_body
from fhir_server.operations import anchor, verify

bp = Blueprint("integrity", __name__, url_prefix="/fhir")
PROVENANCE_PARAM = "_anchor-provenance"


@bp.before_request
def _negotiate():
    negotiate()


def _node():
    return current_app.extensions["phrx.node"]


@bp.post("/$anchor")
def anchor_now():
    guard.anchor()
    return fhir_response(anchor.run(_node()))


@bp.get("/<res_type>/<res_id>/$verify")
def verify_current(res_type: str, res_id: str):
    guard.verify_stored(res_type, res_id)
    return fhir_response(verify.verify_stored(_node(), res_type, res_id).to_parameters())


@bp.get("/<res_type>/<res_id>/_history/<int:version_id>/$verify")
def verify_version(res_type: str, res_id: str, version_id: int):
    guard.verify_stored(res_type, res_id, version_id)
    result = verify.verify_stored(_node(), res_type, res_id, version_id)
    return fhir_response(result.to_parameters())


@bp.get("/<res_type>/<res_id>/_history/<int:version_id>/$provenance")
def provenance(res_type: str, res_id: str, version_id: int):
    guard.verify_stored(res_type, res_id, version_id)
    return fhir_response(verify.provenance_of(_node(), res_type, res_id, version_id))


@bp.post("/$verify")
def verify_copy():
    body = read_json_body()
    guard.verify_copies(body)
    return fhir_response(verify.verify_external(_node(), body))


@bp.after_app_request
def _attach_provenance(response):
    if request.args.get(PROVENANCE_PARAM) not in ("true", "1") or response.status_code != 200:
        return response
    if not (response.mimetype or "").endswith("json"):
        return response
    body = json.loads(response.get_data())
    if body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        return response
    keys = [version_key_of(e.get("resource") or {}) for e in body.get("entry") or []]
    anchors = journal.version_anchors(_node().engine, [k for k in keys if k])
    root = base_url()
    for key in keys:
        found = anchors.get(key) if key else None
        if found is None or not found.anchored:
            continue
        body.setdefault("entry", []).append(
            {
                "fullUrl": f"{root}/Provenance/{provenance_id(found)}",
                "resource": provenance_for(found),
                "search": {"mode": "include"},
            }
        )
    response.set_data(json.dumps(body, ensure_ascii=False).encode())
    return response
