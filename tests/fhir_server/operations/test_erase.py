"""$erase: crypto-shredding on SQLite and PostgreSQL, checked from the raw database."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fhir_server.errors import Gone, NotFound
from fhir_server.operations.erase import erase_patient
from fhir_server.search.runner import run_search
from fhir_server.storage.db import compartments, data_keys, metadata, resources, versions
from fhir_server.storage.keystore import SqlDataKeyStore
from vault.envelope import open_sealed, record_aad
from vault.errors import IntegrityError, KeyDestroyed
from vault.keyring import KeyRing
from vault.masterkey import master_key_from_config

SENTINEL = "Zyxwvutsentinel"


def condition(rid, patient, code="E11.9"):
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
        "note": [{"text": f"{SENTINEL} note"}] if patient == "p1" else [],
    }


@pytest.fixture
def two_patients(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": SENTINEL}]})
    cx.put(node, {"resourceType": "Patient", "id": "p2", "name": [{"family": "Keep"}]})
    cx.put(node, condition("c1", "p1"))
    updated = condition("c1", "p1", "I10")
    cx.put(node, updated)  # two sealed versions of c1
    cx.put(node, condition("c2", "p2"))
    cx.put(node, cx.privacy_consent(period=("2020-01-01", "2099-12-31")))
    return node


def _master(node) -> bytes:
    return master_key_from_config(node.config.data_dir / "keys" / "master.key").load()


def _sealed_rows(node, scope):
    with node.engine.connect() as conn:
        query = select(
            versions.c.res_type,
            versions.c.res_id,
            versions.c.version_id,
            versions.c.key_scope,
            versions.c.sealed,
        ).where(versions.c.key_scope == scope, versions.c.sealed.is_not(None))
        return conn.execute(query).all()


def test_erase_shreds_everything_of_the_patient(two_patients, cx):
    node = two_patients
    scope = KeyRing.patient_scope("p1")
    with node.engine.connect() as conn:
        wrapped = conn.execute(
            select(data_keys.c.wrapped).where(data_keys.c.scope == scope)
        ).scalar()
        p1_pks = [
            r[0]
            for r in conn.execute(
                select(compartments.c.resource_pk).where(compartments.c.patient_id == "p1")
            )
        ]
    assert wrapped and len(p1_pks) == 3
    assert run_search(node.store, "Patient", [("name", SENTINEL)]).total == 1

    result = erase_patient(node.store, "p1")
    assert result.key_destroyed
    assert sorted(result.resources) == ["Condition/c1", "Consent/c1", "Patient/p1"]

    # The API view: gone, and the sentinel search term matches nothing.
    with pytest.raises(Gone):
        node.store.read("Patient", "p1")
    assert run_search(node.store, "Patient", [("name", SENTINEL)]).total == 0
    assert run_search(node.store, "Condition", [("patient", "p1")]).total == 0
    assert node.store.read("Condition", "c2")["id"] == "c2"  # p2 untouched

    # The raw database view: no key, no blind index, no compartment rows.
    with node.engine.connect() as conn:
        assert conn.execute(select(data_keys).where(data_keys.c.scope == scope)).first() is None
        for name, table in metadata.tables.items():
            if name.startswith("sidx_"):
                count = conn.execute(
                    select(func.count()).select_from(table).where(table.c.resource_pk.in_(p1_pks))
                ).scalar_one()
                assert count == 0, name
        left = conn.execute(
            select(func.count()).select_from(compartments).where(compartments.c.patient_id == "p1")
        )
        assert left.scalar_one() == 0
        flags = conn.execute(select(resources.c.deleted).where(resources.c.pk.in_(p1_pks))).all()
        assert flags and all(f[0] for f in flags)

    # Ciphertext is still there, but not even the master key opens it.
    rows = _sealed_rows(node, scope)
    assert len(rows) == 4  # Patient, Condition v1 + v2, Consent
    fresh = KeyRing(_master(node), SqlDataKeyStore(node.engine))
    with pytest.raises(KeyDestroyed):
        fresh.data_key(scope, create=False)
    guess = fresh.data_key(scope, create=True)  # a new key for the scope is just another key
    for res_type, res_id, version_id, key_scope, sealed in rows:
        assert SENTINEL.encode() not in bytes(sealed)
        with pytest.raises(IntegrityError):
            open_sealed(guess, sealed, record_aad(res_type, res_id, version_id, key_scope))
    with pytest.raises(IntegrityError):
        fresh.unwrap_data_key(scope, b"\x01" + b"\x00" * 60)  # only the wrapped key could open it


def test_sqlite_files_no_longer_hold_the_wrapped_key(sqlite_node, cx):
    node = sqlite_node
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": SENTINEL}]})
    scope = KeyRing.patient_scope("p1")
    with node.engine.connect() as conn:
        wrapped = bytes(
            conn.execute(select(data_keys.c.wrapped).where(data_keys.c.scope == scope)).scalar()
        )
    files = list(node.config.data_dir.glob("phrx.sqlite3*"))
    assert wrapped in b"".join(p.read_bytes() for p in files)  # the key is on disk now
    result = erase_patient(node.store, "p1")
    assert result.key_destroyed and result.scrubbed
    blobs = b"".join(p.read_bytes() for p in node.config.data_dir.glob("phrx.sqlite3*"))
    assert wrapped not in blobs


def test_erase_is_idempotent_and_unknown_patient_is_404(two_patients):
    erase_patient(two_patients.store, "p1")
    again = erase_patient(two_patients.store, "p1")
    assert not again.key_destroyed
    with pytest.raises(NotFound):
        erase_patient(two_patients.store, "nobody")


def test_erase_records_an_audit_event_outside_the_shredded_scope(two_patients):
    from consent import audit

    event = audit.erasure(
        patient_id="p1", user="Patient/p1", client_id="app", node="TW-node", country="TW"
    )
    result = erase_patient(two_patients.store, "p1", audit_event=event)
    stored = two_patients.store.read("AuditEvent", result.audit_event_id)
    assert stored["subtype"][0]["code"] == "erase"
    assert stored["outcome"] == "0"


def test_after_erasure_the_audit_log_verifies_and_stays_readable(two_patients, client):
    """AuditEvents are sealed under the node key: erasing p1 destroys p1's clinical
    data but not the node's record of who accessed it."""
    from consent import audit
    from fhir_server.storage.audit_log import verify_log

    node = two_patients
    for path in ("/fhir/Patient/p1", "/fhir/Condition/c1", "/fhir/Condition?patient=p1"):
        assert client.get(path).status_code == 200
    event = audit.erasure("p1", user="Patient/p1", client_id="app", node="TW-node", country="TW")
    result = erase_patient(node.store, "p1", audit_event=event)
    assert result.key_destroyed

    log = run_search(node.store, "AuditEvent", [("_count", "1000")]).matches
    report = verify_log(node.store, log)
    assert report.ok, report.problems
    p1_log = run_search(node.store, "AuditEvent", [("patient", "p1"), ("_count", "100")]).matches
    touched = {e.get("what", {}).get("reference") for ev in p1_log for e in ev["entity"]}
    assert {"Condition/c1", "Patient/p1"} <= touched  # the operator still sees the accesses
    assert any(ev["subtype"][0]["code"] == "erase" for ev in p1_log)
    assert all(SENTINEL not in str(ev) for ev in log)  # references and ids only

    scope = KeyRing.patient_scope("p1")
    clinical = _sealed_rows(node, scope)
    assert {row.res_type for row in clinical} >= {"Patient", "Condition"}
    master = _master(node)
    with pytest.raises(KeyDestroyed):
        KeyRing(master, SqlDataKeyStore(node.engine)).data_key(scope, create=False)
    for row in clinical:
        with pytest.raises(Gone):
            node.store.sealer.open(row.res_type, row.res_id, row.version_id, scope, row.sealed)


def test_a_client_posted_audit_event_of_the_patient_is_erased_with_them(two_patients, client):
    """The generic writer seals a client's AuditEvent under the patient's key; the
    erasure deletes it, so the rest of the log stays searchable."""
    posted = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"reference": "Patient/p1"}, "requestor": True}],
        "source": {"observer": {"display": "an EHR"}},
    }
    created = client.post("/fhir/AuditEvent", json=posted)
    assert created.status_code == 201, created.json
    erase_patient(two_patients.store, "p1")
    log = run_search(two_patients.store, "AuditEvent", [("patient", "p1"), ("_count", "100")])
    assert log.matches and all(e["meta"] for e in log.matches)  # all decryptable
    assert created.json["id"] not in {e["id"] for e in log.matches}
