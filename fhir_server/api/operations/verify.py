"""``$verify``: ``GET /fhir/{type}/{id}[/_history/{vid}]/$verify`` on a stored version,
``POST /fhir/$verify`` on a downloaded copy.

Core: :mod:`fhir_server.operations.verify`. Access: :func:`guard.verify_stored` (read
access to the resource version) and :func:`guard.verify_copies` (a copy naming a
stored version must be readable).

Registered before the generic REST blueprint; Werkzeug ranks rules with more static
parts first anyway, so ``/fhir/Patient/1/$verify`` never reaches ``read``
(tests/anchoring/test_integrity_api.py checks both orders of registration).
"""

from __future__ import annotations

from fhir_server.api import guard
from fhir_server.api.http import fhir_response, read_json_body
from fhir_server.api.operations.base import INTEGRITY, node
from fhir_server.operations import verify as core

bp = INTEGRITY
CORE = core


@bp.get("/<res_type>/<res_id>/$verify")
def verify_current(res_type: str, res_id: str):
    guard.verify_stored(res_type, res_id)
    return fhir_response(core.verify_stored(node(), res_type, res_id).to_parameters())


@bp.get("/<res_type>/<res_id>/_history/<int(max=2147483647):version_id>/$verify")
def verify_version(res_type: str, res_id: str, version_id: int):
    guard.verify_stored(res_type, res_id, version_id)
    result = core.verify_stored(node(), res_type, res_id, version_id)
    return fhir_response(result.to_parameters())


@bp.post("/$verify")
def verify_copy():
    body = read_json_body()
    guard.verify_copies(body)
    return fhir_response(core.verify_external(node(), body))
