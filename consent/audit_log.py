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
    """Validate, chain and store ``event``; returns the stored AuditEvent."""
    validate_resource(event)
    _ensure_head_row(store.engine)
    with store.unit_of_work(prepare=[event]) as writer:
        row = writer.conn.execute(
            select(node_settings.c.value)
            .where(node_settings.c.name == HEAD_SETTING)
            .with_for_update()
        ).scalar_one()
        chain = AuditChain(_parse(row))
        chained = chain.append(event)
        stored = writer.create(chained, res_id=chained["id"]).resource
        writer.conn.execute(
            update(node_settings)
            .where(node_settings.c.name == HEAD_SETTING)
            .values(value=f"{chain.head.sequence}:{chain.head.digest}")
        )
    return stored


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
