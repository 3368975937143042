"""Write the request's AuditEvent(s) once the response is known (Flask ``after_request``).

The request's access policy (:func:`fhir_server.api.guard.policy`) noted what the
token was shown, what it wrote and what consent withheld; this hook turns that
into AuditEvents (:mod:`consent.request_audit`) and chains each into the node's
audit log (:func:`consent.audit_log.record`: the normal writer, so journaled and
anchored like any record, plus the hash chain).

Fail closed: when the audit log cannot be written, the client gets a 500 instead
of data whose disclosure left no trace (a write has committed by then; its 500
says the outcome is uncertain, and the server log names the failure).
"""

from __future__ import annotations

import json
import logging

from flask import current_app, g, request

from consent.audit_log import record
from consent.request_audit import Response
from fhir_server.api.http import fhir_response
from fhir_server.errors import Issue, operation_outcome

log = logging.getLogger("phrx")
FHIR_PREFIX = "/fhir"


def record_audit(response):
    current = g.get("phrx_policy")
    if current is None or current.audit is None:
        return response  # the request never reached the resource policy
    node = current_app.extensions["phrx.node"]
    exchange = Response(
        method=request.method,
        path=request.path.removeprefix(FHIR_PREFIX).strip("/"),
        query=request.query_string.decode("latin-1"),
        status=response.status_code,
        diagnostics=_diagnostics(response) if response.status_code >= 400 else "",
    )
    try:
        for event in current.audit.events(current.access, node, exchange):
            record(node.store, event)
    except Exception:
        log.exception("could not write the AuditEvent of %s %s", request.method, request.path)
        body = operation_outcome([Issue("exception", "The access could not be audited.")])
        return fhir_response(body, 500)
    return response


def _diagnostics(response) -> str:
    try:
        body = json.loads(response.get_data())
        return "; ".join(i.get("diagnostics", "") for i in body.get("issue", []))[:1000]
    except (ValueError, AttributeError, TypeError):
        return ""
