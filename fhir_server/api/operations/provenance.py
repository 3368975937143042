"""``GET /fhir/{type}/{id}/_history/{vid}/$provenance``: the anchoring proof of a version;
and ``_anchor-provenance=true`` on any searchset (searches, ``$everything``), which
adds the Provenance of every anchored version the page holds.

Core: :mod:`fhir_server.operations.provenance`. Access: :func:`guard.verify_stored`
(read access to the version); the searchset itself was decided by its own route.
"""

from __future__ import annotations

import json

from flask import request

from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response
from fhir_server.api.operations.base import INTEGRITY, node
from fhir_server.operations import provenance as core

bp = INTEGRITY
CORE = core


@bp.get("/<res_type>/<res_id>/_history/<int:version_id>/$provenance")
def provenance(res_type: str, res_id: str, version_id: int):
    guard.verify_stored(res_type, res_id, version_id)
    return fhir_response(core.provenance_of(node(), res_type, res_id, version_id))


@bp.after_app_request
def _attach_provenance(response):
    if request.args.get(core.PROVENANCE_PARAM) not in ("true", "1") or response.status_code != 200:
        return response
    if not (response.mimetype or "").endswith("json"):
        return response
    body = json.loads(response.get_data())
    if core.with_provenance(node(), body, base_url()):
        response.set_data(json.dumps(body, ensure_ascii=False).encode())
    return response
