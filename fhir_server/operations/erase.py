"""Patient/{id}/$erase: crypto-shredding of one patient's record (GDPR art. 17 style).

Flask-free. In one transaction: every resource sealed under the patient's data
key, or in that patient's compartment only, gets a deletion version; its
blind-index rows (all ``sidx_*`` tables) and ``resource_compartments`` rows are
removed; keys released to other nodes are forgotten; the erasure AuditEvent is
written. After the commit the patient's wrapped data key is deleted
(``KeyRing.destroy``), so every version ever written for that patient -- still
present as ciphertext -- can no longer be decrypted, not even with the node
master key and full database access.

The node's own AuditEvents are left alone: they are its legal record of who accessed
what, sealed under the node key (:mod:`fhir_server.storage.audit_store`) and carrying only
references and ids, so after the erasure the patient's access log stays readable
to the operator (``AuditEvent?patient=``) and the hash chain still verifies.

Best effort, the key is also scrubbed from the database files: SQLite deletes
it with ``secure_delete`` and truncates the WAL; PostgreSQL runs ``VACUUM
data_keys``. Other worker processes drop their cached copy of the key at their
next request (``KeyRing.refresh`` sees the store's key generation change).
Limits (documented, not solved here): anchoring leaf hashes stay (hashes of
content with random ids, needed for the chain), and copies released to other
nodes must be erased there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import delete, or_, select, update

from fhir_server import ids
from fhir_server.errors import NotFound
from fhir_server.storage import audit_store
from fhir_server.storage.db import compartments, data_keys, metadata, resources, versions
from vault.keyring import NODE_SCOPE, KeyRing

NAME = "erase"
DEFINITION_URL = "https://phrx.example.org/fhir/OperationDefinition/Patient-erase"
_CHUNK = 500
_AUDIT = "AuditEvent"
log = logging.getLogger("phrx.erase")


@dataclass
class ErasureResult:
    patient_id: str
    resources: list[str] = field(default_factory=list)  # "Type/id" marked deleted
    key_destroyed: bool = False
    scrubbed: bool = False
    audit_event_id: str | None = None

    def to_parameters(self) -> dict:
        return {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": f"Patient/{self.patient_id}"}},
                {"name": "erased", "valueInteger": len(self.resources)},
                {"name": "keyDestroyed", "valueBoolean": self.key_destroyed},
                {"name": "scrubbed", "valueBoolean": self.scrubbed},
                *(
                    [
                        {
                            "name": "audit",
                            "valueReference": {"reference": f"AuditEvent/{self.audit_event_id}"},
                        }
                    ]
                    if self.audit_event_id
                    else []
                ),
            ],
        }


def erase_patient(store, patient_id: str, *, audit_event: dict | None = None) -> ErasureResult:
    """Crypto-shred ``patient_id``; ``audit_event`` is stored in the same transaction."""
    ids.check_id(patient_id, "patient id")
    scope = KeyRing.patient_scope(patient_id)
    result = ErasureResult(patient_id)
    with store.connect() as conn:
        known = conn.execute(
            select(resources.c.pk).where(
                resources.c.res_type == "Patient", resources.c.res_id == patient_id
            )
        ).first()
    if known is None:
        raise NotFound(f"Patient/{patient_id} is not known.")
    audit_store.prepare(store)
    with store.unit_of_work() as writer:
        targets = _targets(writer.conn, patient_id, scope)
        for _pk, res_type, res_id, deleted in targets:
            if not deleted:
                writer.delete(res_type, res_id)
            result.resources.append(f"{res_type}/{res_id}")
        writer.flush()
        _drop_index_rows(writer.conn, [t[0] for t in targets], patient_id)
        _forget_released_keys(writer.conn, patient_id)
        if audit_event:
            result.audit_event_id = audit_store.append(store, writer.conn, [audit_event])[0]["id"]
    result.key_destroyed, result.scrubbed = _destroy_key(store, scope)
    log.info("erased patient scope=%s resources=%d", scope, len(result.resources))
    return result


def _targets(conn, patient_id: str, scope: str) -> list[tuple]:
    """(pk, type, id, deleted) of resources sealed under ``scope`` (any version) or
    belonging to this patient's compartment alone -- except the node's own
    AuditEvents (sealed under the node key). An AuditEvent a client posted, which
    the generic writer sealed under the patient's key, is erased like any record:
    left undeleted it would fail every search of the log once the key is gone."""
    ever_sealed = select(versions.c.res_type, versions.c.res_id).where(
        versions.c.key_scope == scope
    )
    in_compartment = select(compartments.c.resource_pk).where(
        compartments.c.patient_id == patient_id
    )
    shared = select(compartments.c.resource_pk).where(compartments.c.patient_id != patient_id)
    sealed_pairs = {tuple(r) for r in conn.execute(ever_sealed.distinct())}
    rows = conn.execute(
        select(
            resources.c.pk,
            resources.c.res_type,
            resources.c.res_id,
            resources.c.deleted,
            resources.c.key_scope,
        ).where(
            or_(
                resources.c.key_scope == scope,
                resources.c.pk.in_(in_compartment) & resources.c.pk.not_in(shared),
            )
            | resources.c.pk.in_(_pks_of(conn, sealed_pairs))
        )
    ).all()
    found = {tuple(r[:4]) for r in rows if not (r[1] == _AUDIT and r[4] == NODE_SCOPE)}
    return sorted(found, key=lambda r: (r[1] != "Patient", r[1], r[2]))


def _pks_of(conn, pairs: set[tuple[str, str]]) -> list[int]:
    pks: list[int] = []
    by_type: dict[str, list[str]] = {}
    for res_type, res_id in pairs:
        by_type.setdefault(res_type, []).append(res_id)
    for res_type, res_ids in by_type.items():
        for start in range(0, len(res_ids), _CHUNK):
            chunk = res_ids[start : start + _CHUNK]
            query = select(resources.c.pk).where(
                resources.c.res_type == res_type, resources.c.res_id.in_(chunk)
            )
            pks.extend(r[0] for r in conn.execute(query))
    return pks


def _drop_index_rows(conn, pks: list[int], patient_id: str) -> None:
    index_tables = [t for name, t in metadata.tables.items() if name.startswith("sidx_")]
    for start in range(0, len(pks), _CHUNK):
        chunk = pks[start : start + _CHUNK]
        for table in index_tables:
            conn.execute(delete(table).where(table.c.resource_pk.in_(chunk)))
        conn.execute(delete(compartments).where(compartments.c.resource_pk.in_(chunk)))
    # Shared resources stay (they are also another patient's), but leave this compartment;
    # the patient's AuditEvents stay in it (the access log outlives the record).
    audit_pks = select(resources.c.pk).where(
        resources.c.res_type == _AUDIT, resources.c.key_scope == NODE_SCOPE
    )
    conn.execute(
        delete(compartments).where(
            compartments.c.patient_id == patient_id, compartments.c.resource_pk.not_in(audit_pks)
        )
    )


def _forget_released_keys(conn, patient_id: str) -> None:
    from consent.tables import released_keys

    conn.execute(
        update(released_keys)
        .where(released_keys.c.patient_id == patient_id)
        .values(wrapped=None, revoked_us=ids.now_us())
    )


def _destroy_key(store, scope: str) -> tuple[bool, bool]:
    """Delete the wrapped data key; then, best effort, scrub it from the database files.

    Returns (destroyed, scrubbed)."""
    engine = store.engine
    removed, scrubbed = False, False
    try:
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                # secure_delete zeroes the freed cell; the TRUNCATE checkpoint moves the
                # rewritten page into the main file and empties the WAL. PRAGMAs go to
                # the driver connection: they must run outside a transaction.
                raw = conn.connection.driver_connection
                raw.execute("PRAGMA secure_delete=ON")
                try:
                    with conn.begin():
                        gone = conn.execute(delete(data_keys).where(data_keys.c.scope == scope))
                        removed = gone.rowcount > 0
                    busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    scrubbed = busy is not None and busy[0] == 0
                finally:
                    raw.execute("PRAGMA secure_delete=OFF")
    except Exception as error:  # fall back to the plain delete below
        log.warning("secure delete of a data key failed: %s", type(error).__name__)
    removed = store.keyring.destroy(scope) or removed  # also drops the cached key
    if engine.dialect.name == "postgresql":
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM data_keys")
            scrubbed = True
        except Exception as error:  # never fail an erasure whose key is already gone
            log.warning("VACUUM after erase failed: %s", type(error).__name__)
    return removed, scrubbed
