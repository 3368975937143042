"""The node's audit log: AuditEvents on one hash chain (:mod:`consent.audit_chain`).

Flask-free. The chain head (sequence and digest of the last event) lives in
``node_settings`` and moves in the same transaction that writes the events, so the
stored events and the head cannot disagree; :mod:`fhir_server.storage.audit_store` does the
writing (sealed under the node key, journaled for anchoring). Verify with
:func:`verify_log`.

Where events go:

* :func:`record_in` -- into a Writer's transaction (a write and its audit commit or
  roll back together);
* :func:`record` / :func:`record_all` -- into the store's current write transaction:
  the request transaction of a read (see ``ResourceStore.begin_request``: the access
  decision and its audit commit together), else a transaction of their own.
"""

from __future__ import annotations

from consent.audit_chain import ChainReport, Head, verify_chain
from fhir_server.storage import audit_store
from fhir_server.storage.audit_store import HEAD_SETTING, ensure_head
from fhir_server.validation import validate_resource

__all__ = [
    "HEAD_SETTING",
    "ensure_head",
    "head",
    "record",
    "record_all",
    "record_in",
    "verify_log",
]


def record(store, event: dict) -> dict:
    """Chain and store one event (see :func:`record_all`); returns it as stored."""
    return record_all(store, [event])[0]


def record_all(store, events: list[dict], *, validate: bool = False) -> list[dict]:
    """Chain and store ``events`` (one request's: one per patient) in the store's
    current write transaction, or one of their own; one move of the head for all.

    ``validate``: run the R4 validator first -- only for events not made by the
    builders of :mod:`consent.audit` / :mod:`fhir_server.access.request_audit`, whose output is
    valid by construction (tests/consent/test_consent_audit*.py validate it)."""
    if not events:
        return []
    if validate:
        for event in events:
            validate_resource(event)
    audit_store.prepare(store)
    with store.write_transaction() as conn:
        return audit_store.append(store, conn, events)


def record_in(writer, events: list[dict], *, validate: bool = False) -> list[dict]:
    """Chain and store ``events`` through ``writer``: in ITS transaction, so they
    commit or roll back with whatever else it wrote. The head row and the node key
    must exist already (:func:`fhir_server.storage.audit_store.prepare`, before the transaction)."""
    if validate:
        for event in events:
            validate_resource(event)
    return audit_store.append(writer.store, writer.conn, events)


def head(engine) -> Head:
    with engine.connect() as conn:
        found = audit_store.read_head(conn)
    return found or audit_store.parse_head(None)


def verify_log(store, events: list[dict]) -> ChainReport:
    """Check stored ``events`` (all of the node's chained AuditEvents) against the head."""
    return verify_chain(events, head(store.engine))
