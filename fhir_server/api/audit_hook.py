"""Write the request's AuditEvent(s): in the transaction of the access they record.

The request's access policy (:func:`fhir_server.api.guard.policy`) noted what the
token was shown, what it wrote and what consent withheld; these hooks turn that
into AuditEvents (:mod:`fhir_server.access.request_audit`) and chain them into the node's
audit log (:mod:`fhir_server.storage.audit_store`: sealed under the node key, journaled and
anchored like any record, on the hash chain).

* Reads (read, vread, search, history, ``$everything``, ``$summary``; see
  :func:`is_read_request`) run in ONE request transaction opened by :func:`begin`
  (``ResourceStore.begin_request``): the consent decision, the data and the
  AuditEvent -- a denial's too -- are read and written in it, and
  :func:`record_audit` commits it before the response is sent. A failed audit
  write rolls it back and the client gets a 500 OperationOutcome, not the data.
* :func:`audit_writes` (the store's ``before_commit``) stores the events of a
  write -- create / update / delete, each transaction or batch entry,
  ``$import-mhb``, ``$share`` -- in the write's own transaction, just before
  COMMIT: if the audit cannot be written the write rolls back (500).
* Anything else (refused or failed writes, ``$verify``) is recorded by
  :func:`record_audit` in a transaction of its own once the response is known,
  before it is sent; fail closed as above.
"""

from __future__ import annotations

import json
import logging

from flask import current_app, g, has_request_context, request

from fhir_server.access import audit_query
from fhir_server.access.request_audit import Response
from fhir_server.api.http import fhir_response
from fhir_server.errors import Issue, operation_outcome
from fhir_server.storage import audit_store
from fhir_server.storage.audit_log import record_all, record_in

log = logging.getLogger("phrx")
FHIR_PREFIX = "/fhir"
# Read operations run in the request transaction; $verify / $provenance are left
# out: they may wait on the chain, which must not happen under the write lock.
_READ_POSTS = ("/_search", "/$everything", "/$summary")
_CHAIN_READS = ("/$verify", "/$provenance")


def is_read_request() -> bool:
    if request.method in ("GET", "HEAD"):
        return not request.path.endswith(_CHAIN_READS)
    return request.method == "POST" and request.path.endswith(_READ_POSTS)


def begin(node) -> None:
    """Called once per request with its policy, before any access is decided: the
    chain head and the node key exist (created outside any write transaction), the
    store audits writes before COMMIT, and a read opens its request transaction
    (which also drops data keys another process destroyed; writes check that in
    ``unit_of_work``)."""
    store = node.store
    audit_store.prepare(store)
    if store.before_commit is not audit_writes:
        store.before_commit = audit_writes
    if is_read_request():
        g.phrx_transaction = store.begin_request()
    else:
        store.keyring.refresh()


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
    record_in(writer, events)


def record_audit(response):
    """``after_request``: store the request's remaining events and commit the request
    transaction; a failure is a 500 OperationOutcome instead of the response."""
    transaction = g.pop("phrx_transaction", None)
    current = g.get("phrx_policy")
    try:
        if current is not None and current.audit is not None:
            node = current_app.extensions["phrx.node"]
            exchange = _exchange(response.status_code, response)
            events = current.audit.events(current.access, node, exchange)
            if transaction is not None:
                audit_store.append(node.store, transaction.conn, events)
            else:
                record_all(node.store, events)
        if transaction is not None:
            transaction.commit()
    except Exception:
        if transaction is not None:
            transaction.rollback()
        log.exception("could not write the AuditEvent of %s %s", request.method, request.path)
        body = operation_outcome([Issue("exception", "The access could not be audited.")])
        return fhir_response(body, 500)
    return response


def end_request(_error=None) -> None:
    """``teardown_request``: a request transaction still open (the response never
    reached :func:`record_audit`) is rolled back, never left bound to the thread."""
    transaction = g.pop("phrx_transaction", None)
    if transaction is not None and transaction.open:
        transaction.rollback()


def _exchange(status: int, response=None) -> Response:
    path = request.path.removeprefix(FHIR_PREFIX).strip("/")
    blind = current_app.extensions["phrx.node"].store.blind
    return Response(
        method=request.method,
        path=path,
        # Ids and controls only: the event outlives the patient's erasure.
        query=audit_query.reduce(path, request.query_string.decode("latin-1"), blind),
        status=status,
        diagnostics=_diagnostics(response) if response is not None and status >= 400 else "",
    )


def _diagnostics(response) -> str:
    try:
        body = json.loads(response.get_data())
        return "; ".join(i.get("diagnostics", "") for i in body.get("issue", []))[:1000]
    except (ValueError, AttributeError, TypeError):
        return ""
