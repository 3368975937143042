"""Store the node's own AuditEvents in the caller's transaction, cheaply. Flask-free.

An AuditEvent is written on every access to patient data, so this is on the read
path. It keeps what makes the log trustworthy -- sealed, hash-chained (the head
row moves in the same transaction), journaled for anchoring like any record --
and drops what the generic write path spends on client input:

* no R4 validation: the events come from the builders of :mod:`consent.audit`
  and :mod:`fhir_server.access.request_audit`, valid by construction (tests validate them
  with :mod:`fhir_server.validation`);
* sealed under the **node** data key, not the patient's: the log is the node's
  legal record and must outlive a patient's erasure (``$erase`` destroys the
  patient's key; the events stay readable and the chain verifiable). They carry
  only references and ids, never clinical content (see :mod:`fhir_server.access.audit_query`
  for the one free-text field that could, the query of a search);
* indexed only by the params the access log is searched by
  (:data:`fhir_server.search.params.AUDIT_EVENT_PARAMS`), with the
  digests of the few fixed codes memoised;
* one canonical serialisation per event serves both the chain digest and the
  anchoring leaf; rows are inserted straight with the Writer's statements, without
  its bookkeeping (an event is always a new resource, version 1, never checked
  against a policy).

The head row and the node key must exist before the transaction opens
(:func:`prepare`): creating either inside it would need a second writer on SQLite.
"""

from __future__ import annotations

import weakref

from sqlalchemy import select

from anchoring.canonical import leaf_hash_of_bytes
from anchoring.journal_tables import journal
from consent.audit_chain import GENESIS, AuditChain, Head
from fhir_server import ids
from fhir_server.errors import AuditFailure
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.search.indexer import CachingBlind, index_rows
from fhir_server.storage import driver_sql
from fhir_server.storage.bulk import index_row_tuples, insert_resources, insert_sql
from fhir_server.storage.db import (
    SETTING_VALUE,
    compartments,
    ensure_setting,
    node_settings,
    versions,
)
from fhir_server.storage.sealing import dumps
from fhir_server.storage.writer import with_server_meta
from vault.keyring import NODE_SCOPE

HEAD_SETTING = "audit_chain_head"
RES_TYPE = "AuditEvent"


# Engines whose head row and node key are known to exist (neither is ever deleted):
# one check per process, not one per audited request.
_READY: weakref.WeakSet = weakref.WeakSet()
# Per store: digests of the events' token values (fixed code systems and codes, no
# patient data), which repeat on every event.
_BLINDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare(store) -> None:
    """Create the chain head row and the node data key if missing (outside any
    write transaction)."""
    if store in _READY:
        return
    if store.bound() is not None:  # creating either now would wait on our own write lock
        raise AuditFailure("The audit log was not prepared before the request transaction.")
    ensure_head(store.engine)
    store.sealer.ensure_key(NODE_SCOPE)
    _READY.add(store)


def ensure_head(engine) -> None:
    ensure_setting(engine, HEAD_SETTING, f"0:{GENESIS}")


def read_head(conn, *, lock: bool = False) -> Head | None:
    query = select(node_settings.c.value).where(node_settings.c.name == HEAD_SETTING)
    row = conn.execute(query.with_for_update() if lock else query).scalar()
    return parse_head(row) if row is not None else None


def parse_head(value: str | None) -> Head:
    if not value:
        return Head(0, GENESIS)
    sequence, _, digest = value.partition(":")
    return Head(int(sequence), digest)


def append(store, conn, events: list[dict]) -> list[dict]:
    """Chain, seal, index and journal ``events`` on ``conn`` (the caller's write
    transaction: they commit or roll back with it); returns the stored events.

    The head row is locked first (FOR UPDATE on PostgreSQL; SQLite's write lock is
    already held) so concurrent writers queue and the chain stays one line. A
    missing head row raises :class:`~fhir_server.errors.AuditFailure`, and the
    caller's transaction rolls back with it."""
    if not events:
        return []
    dialect = conn.dialect
    mark = driver_sql.marker(dialect)
    # SQLite: the write lock is held already; PostgreSQL: lock the head row.
    head_sql = SETTING_VALUE + (" FOR UPDATE" if dialect.name == "postgresql" else "")
    with driver_sql.cursor(conn.engine, conn) as cursor:
        cursor.execute(driver_sql.in_style(dialect, head_sql), (HEAD_SETTING,))
        row = cursor.fetchone()
        if row is None:
            raise AuditFailure(
                "The access could not be audited (the audit chain head is missing); nothing "
                "was served or stored."
            )
        chain = AuditChain(parse_head(row[0]))
        now = ids.now_us()
        stored_events, resource_rows, version_rows, journal_rows = [], [], [], []
        for event in events:
            chained, canonical = chain.link(event)
            res_id = chained["id"]
            stored = with_server_meta(chained, res_id, 1, now)
            sealed = store.sealer.seal(RES_TYPE, res_id, 1, NODE_SCOPE, dumps(stored))
            leaf = leaf_hash_of_bytes(canonical)  # meta is not part of the canonical form
            link = store.chain.link(RES_TYPE, res_id, 1, False, leaf, None)
            version_rows.append(
                (RES_TYPE, res_id, 1, now, False, "POST", NODE_SCOPE, sealed, leaf, link)
            )
            journal_rows.append((RES_TYPE, res_id, 1, leaf, now))
            resource_rows.append(
                {
                    "res_type": RES_TYPE,
                    "res_id": res_id,
                    "version_id": 1,
                    "last_updated_us": now,
                    "deleted": False,
                    "key_scope": NODE_SCOPE,
                    "head": store.chain.head(RES_TYPE, res_id, 1, link),
                }
            )
            stored_events.append(stored)
        pks = insert_resources(conn, resource_rows)
        cursor.executemany(insert_sql(versions.name, mark), version_rows)
        cursor.executemany(insert_sql(journal.name, mark), journal_rows)
        _insert_index_rows(cursor, mark, store, pks, stored_events)
        head = f"{chain.head.sequence}:{chain.head.digest}"
        cursor.execute(driver_sql.in_style(dialect, _MOVE_HEAD), (head, HEAD_SETTING))
    return stored_events


_MOVE_HEAD = "UPDATE node_settings SET value = ? WHERE name = ?"


def _insert_index_rows(cursor, marker: str, store, pks: list[int], events: list[dict]) -> None:
    blind = _BLINDS.get(store)
    if blind is None:
        blind = _BLINDS[store] = CachingBlind(store.blind, maxsize=4096)
    by_table: dict[str, list[tuple]] = {}
    for pk, event in zip(pks, events, strict=True):
        for name, rows in index_row_tuples(pk, index_rows(event, blind)):
            by_table.setdefault(name, []).extend(rows)
        patients = sorted(compartment_patient_ids(event))
        by_table.setdefault(compartments.name, []).extend((pk, p) for p in patients)
    for name, values in by_table.items():
        if values:
            cursor.executemany(insert_sql(name, marker), values)
