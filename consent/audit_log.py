"""Store AuditEvents on the node's chain: each one linked to the previous (audit_chain).

Flask-free. The chain head (sequence and digest of the last event) lives in
``node_settings`` and moves in the same transaction that writes the event, so the
stored events and the head cannot disagree; the head row is locked (FOR UPDATE
on PostgreSQL, the write lock on SQLite) so concurrent writers queue. Verify with
:func:`verify_log`.
"""

from __future__ import annotations

import weakref

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from consent.audit_chain import GENESIS, AuditChain, ChainReport, Head, verify_chain
from fhir_server.resources.db import node_settings
from validators.r4 import validate_resource

HEAD_SETTING = "audit_chain_head"


def record(store, event: dict) -> dict:
    """Validate, chain and store ``event`` in a transaction of its own; returns it.

    Used where there is no write to join (reads, refusals, route-specific events).
    When the request already stored an equal event in its write transaction
    (:data:`recorded_in_transaction`), that one is returned and nothing is added."""
    if recorded_in_transaction is not None:
        found = recorded_in_transaction(event)
        if found is not None:
            return found
    validate_resource(event)
    _ensure_head_row(store.engine)
    with store.unit_of_work(prepare=[event], hooks=False) as writer:
        return record_in(writer, [event], validate=False)[0]


def record_all(store, events: list[dict], *, validate: bool = True) -> list[dict]:
    """Like :func:`record` for several events (one request's, one per patient): one
    transaction and one move of the head for all of them."""
    if not events:
        return []
    if validate:
        for event in events:
            validate_resource(event)
    _ensure_head_row(store.engine)
    with store.unit_of_work(prepare=events, hooks=False) as writer:
        return record_in(writer, events, validate=False)


def record_in(writer, events: list[dict], *, validate: bool = True) -> list[dict]:
    """Chain and store ``events`` through ``writer``: in ITS transaction, so they
    commit or roll back with whatever else it wrote (a write and its audit).

    The head row is locked on the writer's connection (FOR UPDATE on PostgreSQL;
    SQLite's write lock is already held) and moved once for all ``events``. A
    missing head row raises (the caller's transaction rolls back): create it with
    :func:`ensure_head` before the transaction opens.

    ``validate=False`` skips the R4 validation of events made by the builders of
    :mod:`consent.audit` / :mod:`consent.request_audit` (their output is validated
    by tests/consent/test_consent_audit.py and test_consent_audit_tx.py): running
    pydantic here would hold the write lock for it, and the writer trusts its input.
    """
    if not events:
        return []
    if validate:
        for event in events:
            validate_resource(event)
    row = writer.conn.execute(
        select(node_settings.c.value).where(node_settings.c.name == HEAD_SETTING).with_for_update()
    ).scalar_one()
    chain = AuditChain(_parse(row))
    stored = []
    for event in events:
        chained = chain.append(event)
        stored.append(writer.create(chained, res_id=chained["id"], checked=False).resource)
    writer.conn.execute(
        update(node_settings)
        .where(node_settings.c.name == HEAD_SETTING)
        .values(value=f"{chain.head.sequence}:{chain.head.digest}")
    )
    return stored


# Set by the HTTP layer: ``callable(event) -> stored event | None``, the event of the
# current request's write transaction equal to ``event`` (a route recording after its
# write what was already recorded with it), so it is not written twice.
recorded_in_transaction = None


def ensure_head(engine) -> None:
    """Create the chain head row if missing (outside any write transaction)."""
    _ensure_head_row(engine)


def head(engine) -> Head:
    with engine.connect() as conn:
        row = conn.execute(
            select(node_settings.c.value).where(node_settings.c.name == HEAD_SETTING)
        ).scalar()
    return _parse(row)


def verify_log(store, events: list[dict]) -> ChainReport:
    """Check stored ``events`` (all of the node's chained AuditEvents) against the head."""
    return verify_chain(events, head(store.engine))


# Engines whose head row is known to exist: the row is never deleted, so one
# successful check per process saves a query on every audited request.
_HEAD_KNOWN: weakref.WeakSet = weakref.WeakSet()


def _ensure_head_row(engine) -> None:
    if engine in _HEAD_KNOWN:
        return
    if head_exists(engine):
        _HEAD_KNOWN.add(engine)
        return
    try:
        with engine.begin() as conn:
            conn.execute(insert(node_settings).values(name=HEAD_SETTING, value=f"0:{GENESIS}"))
    except IntegrityError:
        pass  # another writer created it first
    _HEAD_KNOWN.add(engine)


def head_exists(engine) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(node_settings.c.name).where(node_settings.c.name == HEAD_SETTING)
        ).first()
    return found is not None


def _parse(value: str | None) -> Head:
    if not value:
        return Head(0, GENESIS)
    sequence, _, digest = value.partition(":")
    return Head(int(sequence), digest)
