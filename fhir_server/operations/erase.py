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

Route: fhir_server/api/operations/erase.py (the patient themself or an administrator).
The store is queried through :mod:`fhir_server.storage.queries`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from federation.links import LinkStore
from fhir_server import ids
from fhir_server.errors import NotFound
from fhir_server.operations.definition import operation_definition, param
from fhir_server.storage import audit_store, queries
from vault.keyring import NODE_SCOPE, KeyRing

_AUDIT = "AuditEvent"
log = logging.getLogger("phrx.erase")
DEFINITION = operation_definition(
    "erase",
    code="erase",
    name="PhrxPatientErase",
    title="Erase a patient's record (crypto-shredding)",
    description=(
        "POST Patient/id/$erase, by the patient themself or a node administrator: every "
        "resource sealed under the patient's data key, or in that patient's compartment "
        "only, gets a deletion version and loses its index rows; keys released to other "
        "nodes are forgotten; then the patient's wrapped data key is destroyed, so no "
        "version written for the patient can be decrypted again. The node's AuditEvents "
        "stay (the access log outlives the record)."
    ),
    resource=["Patient"],
    system=False,
    type_=False,
    instance=True,
    affects_state=True,
    parameters=[
        param("patient", "out", 1, "1", "Reference", "The erased patient."),
        param("erased", "out", 1, "1", "integer", "Resources marked deleted."),
        param("keyDestroyed", "out", 1, "1", "boolean", "The data key was deleted."),
        param("scrubbed", "out", 1, "1", "boolean", "Also scrubbed from the database files."),
        param("audit", "out", 0, "1", "Reference", "The erasure AuditEvent."),
    ],
)
NAME = DEFINITION["code"]


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
    if not queries.resource_known(store, "Patient", patient_id):
        raise NotFound(f"Patient/{patient_id} is not known.")
    audit_store.prepare(store)
    with store.unit_of_work() as writer:
        targets = _targets(writer.conn, patient_id, scope)
        for _pk, res_type, res_id, deleted in targets:
            if not deleted:
                writer.delete(res_type, res_id)
            result.resources.append(f"{res_type}/{res_id}")
        writer.flush()
        queries.drop_index_rows(writer.conn, [t[0] for t in targets])
        # Shared resources stay (they are also another patient's), but leave this
        # compartment; the patient's AuditEvents stay in it (the log outlives the record).
        queries.leave_compartment(writer.conn, patient_id, keep_type=_AUDIT, keep_scope=NODE_SCOPE)
        queries.forget_released_keys(writer.conn, patient_id=patient_id)
        LinkStore.revoke_patient(writer.conn, patient_id)  # its share links die with it
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
    rows = queries.erasure_candidates(conn, patient_id, scope)
    found = {tuple(r[:4]) for r in rows if not (r[1] == _AUDIT and r[4] == NODE_SCOPE)}
    return sorted(found, key=lambda r: (r[1] != "Patient", r[1], r[2]))


def _destroy_key(store, scope: str) -> tuple[bool, bool]:
    """Delete the wrapped data key; then, best effort, scrub it from the database files.

    Returns (destroyed, scrubbed)."""
    removed, scrubbed = queries.scrub_data_key(store.engine, scope)
    removed = store.keyring.destroy(scope) or removed  # also drops the cached key
    scrubbed = queries.vacuum_data_keys(store.engine) or scrubbed
    return removed, scrubbed
