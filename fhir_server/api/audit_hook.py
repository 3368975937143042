"""Write the request's AuditEvent(s): writes in their own transaction, reads after.

The request's access policy (:func:`fhir_server.api.guard.policy`) noted what the
token was shown, what it wrote and what consent withheld; these hooks turn that
into AuditEvents (:mod:`consent.request_audit`) and chain them into the node's
audit log (:mod:`consent.audit_log`: the normal writer, so journaled and anchored
like any record, plus the hash chain).

* :func:`audit_writes` (the store's ``before_commit``, installed by :func:`begin`)
  stores the events of a write -- create / update / delete, each transaction or
  batch entry, ``$import-mhb``, ``$share`` -- in the write's own transaction, just
  before COMMIT: if the audit cannot be written the write rolls back (500), so no
  change is ever stored without its AuditEvent.
* :func:`record_audit` (``after_request``) writes the rest (reads, searches,
  refusals, failed writes) once the response is known, before it is sent. Fail
  closed: when that fails the client gets a 500 instead of the data.
"""

from __future__ import annotations

import json
import logging

from flask import current_app, g, has_request_context, request

from consent import audit_log
from consent.audit_log import ensure_head, record_all, record_in
from consent.request_audit import Response, same_event
from fhir_server.api.http import fhir_response
from fhir_server.errors import Issue, operation_outcome

log = logging.getLogger("phrx")
FHIR_PREFIX = "/fhir"


def begin(node) -> None:
    """Called once per request with its policy: the chain head exists (created
    outside any write transaction) and the store audits writes before COMMIT."""
    ensure_head(node.store.engine)
    if node.store.before_commit is not audit_writes:
        node.store.before_commit = audit_writes


def audit_writes(writer) -> None:
    """Store the AuditEvents of what ``writer`` wrote, through ``writer`` (same
    transaction). Outside a request, or for a request not under the resource
    policy, nothing is added."""
    if not has_request_context():
        return
    current = g.get("phrx_policy")
    if current is None or current.audit is None:
        return
    node = current_app.extensions["phrx.node"]
    events = current.audit.take_writes(current.access, node, _exchange(200), writer.changes)
    # Built by the tested builders: not re-validated while the write lock is held.
    stored = record_in(writer, events, validate=False)
    if stored:
        g.setdefault("phrx_audited", []).extend(stored)


def _recorded_in_transaction(event: dict) -> dict | None:
    if not has_request_context():
        return None
    key = same_event(event)
    return next((e for e in g.get("phrx_audited", ()) if same_event(e) == key), None)


audit_log.recorded_in_transaction = _recorded_in_transaction


def record_audit(response):
    current = g.get("phrx_policy")
    if current is None or current.audit is None:
        return response  # the request never reached the resource policy
    node = current_app.extensions["phrx.node"]
    exchange = _exchange(response.status_code, response)
    try:
        record_all(node.store, current.audit.events(current.access, node, exchange))
    except Exception:
        log.exception("could not write the AuditEvent of %s %s", request.method, request.path)
        body = operation_outcome([Issue("exception", "The access could not be audited.")])
        return fhir_response(body, 500)
    return response


def _exchange(status: int, response=None) -> Response:
    return Response(
        method=request.method,
        path=request.path.removeprefix(FHIR_PREFIX).strip("/"),
        query=request.query_string.decode("latin-1"),
        status=status,
        diagnostics=_diagnostics(response) if response is not None and status >= 400 else "",
    )


def _diagnostics(response) -> str:
    try:
        body = json.loads(response.get_data())
        return "; ".join(i.get("diagnostics", "") for i in body.get("issue", []))[:1000]
    except (ValueError, AttributeError, TypeError):
        return ""
