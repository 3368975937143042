"""``GET /fhir/OperationDefinition[/{id}]``: the OperationDefinitions of this node's
``$operations``, read-only, as the CapabilityStatement names them.

Each is declared by its operation's core (fhir_server/operations/registry.py) under
one canonical base; ``CapabilityStatement.rest.operation.definition`` is its ``url``
and its ``id`` is the last segment. Like ``metadata`` they describe the API, not
anyone's data, and hold none: :func:`is_public_read` names the requests that need
no token -- GET / HEAD of exactly these paths -- for the bearer hook
(fhir_server/api/smart/bearer_hook.py) to let through like ``metadata``. Serving them
writes no AuditEvent (no patient's data is touched).

* ``GET /fhir/OperationDefinition/{id}`` of one of these ids: the definition (404
  never: other ids are not routed here). PUT / DELETE on these ids: 405.
* ``GET /fhir/OperationDefinition``: a searchset of these definitions, by ``_id``,
  ``url``, ``code``, ``name`` (case-insensitive prefix), ``status``, ``kind``,
  ``base`` (comma-separated values are alternatives); other parameters are
  ignored, or 400 with ``Prefer: handling=strict``.

Other OperationDefinition ids stay ordinary stored resources (token, REST rules).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import request

from fhir_server import ids
from fhir_server.api.http import base_url, fhir_response, strict_handling
from fhir_server.api.operations.base import URL_PREFIX, blueprint
from fhir_server.errors import BadRequest, MethodNotAllowed
from fhir_server.operations import registry

bp = blueprint("operation_definitions")
RES_TYPE = "OperationDefinition"
_IDS = tuple(d["id"] for d in registry.definitions())
_ID_RULE = "<any(" + ", ".join(repr(i) for i in _IDS) + "):op_id>"
_WRITES = ["PUT", "DELETE", "PATCH", "POST"]
# search parameter -> (element, exact?): exact token / uri match, or string prefix
SEARCH = {
    "_id": ("id", True),
    "url": ("url", True),
    "code": ("code", True),
    "name": ("name", False),
    "status": ("status", True),
    "kind": ("kind", True),
    "base": ("base", True),
}
IGNORED = {"_format", "_count", "_pretty"}
PUBLIC_PATHS = frozenset(
    [f"{URL_PREFIX}/{RES_TYPE}", *(f"{URL_PREFIX}/{RES_TYPE}/{i}" for i in _IDS)]
)


def is_public_read(method: str, path: str) -> bool:
    """Is this a read of the node's OperationDefinitions (served without a token)?"""
    return method in ("GET", "HEAD") and path in PUBLIC_PATHS


@bp.get(f"/{RES_TYPE}/{_ID_RULE}")
def read(op_id: str):
    return fhir_response(registry.definition(op_id), 200, {"ETag": 'W/"1"'})


@bp.route(f"/{RES_TYPE}/{_ID_RULE}", methods=_WRITES)
def refuse_write(op_id: str):
    raise MethodNotAllowed(
        f"{RES_TYPE}/{op_id} describes one of this node's operations: it is read-only.",
        headers={"Allow": "GET, HEAD"},
    )


@bp.get(f"/{RES_TYPE}")
def search():
    query = [(k, v) for k, v in request.args.items(multi=True) if k not in IGNORED]
    applied = [(k, v) for k, v in query if k in SEARCH]
    unknown = sorted({k for k, _ in query} - SEARCH.keys())
    if unknown and strict_handling():
        raise BadRequest(f"Unknown search parameter(s) for {RES_TYPE}: {', '.join(unknown)}.")
    found = [d for d in registry.definitions() if all(_matches(d, k, v) for k, v in applied)]
    root = base_url()
    link = f"{root}/{RES_TYPE}" + ("?" + urlencode(applied) if applied else "")
    return fhir_response(
        {
            "resourceType": "Bundle",
            "id": ids.new_id(),
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": link}],
            "entry": [
                {
                    "fullUrl": f"{root}/{RES_TYPE}/{d['id']}",
                    "resource": d,
                    "search": {"mode": "match"},
                }
                for d in found
            ],
        }
    )


def _matches(definition: dict, name: str, value: str) -> bool:
    element, exact = SEARCH[name]
    have = definition.get(element)
    if not isinstance(have, str):
        return False
    wanted = [w for w in value.split(",") if w]
    if exact:
        return have in wanted
    return any(have.lower().startswith(w.lower()) for w in wanted)
