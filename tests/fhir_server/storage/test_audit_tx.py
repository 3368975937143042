"""Issue 6: a write and its AuditEvent are stored in ONE transaction (SQLite and PostgreSQL).

The audit is made to fail without mocking the database: the chain head row is
deleted behind the node's back (the process remembers it exists, so nothing
recreates it), and the AuditEvent of the next write cannot be chained.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select

from fhir_server.search.runner import run_search
from fhir_server.storage.audit_log import HEAD_SETTING, head, verify_log
from fhir_server.storage.db import node_settings, resources, versions
from fhir_server.validation import validate_resource

JSON = {"Content-Type": "application/fhir+json"}


def patient(pid="p1"):
    return {"resourceType": "Patient", "id": pid, "name": [{"family": "Lin"}]}


def observation(oid="o1", pid="p1", value=1):
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": value},
    }


def audit_events(node, *, tokens=False):
    """The node's AuditEvents; without the token-issue events unless ``tokens``."""
    found = run_search(node.store, "AuditEvent", [("_count", "1000")]).matches
    if tokens:
        return found
    return [e for e in found if not e["subtype"][0]["code"].startswith("token-")]


def count(node, res_type):
    with node.store.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(versions).where(versions.c.res_type == res_type)
        ).scalar_one()


def drop_head(node):
    with node.store.engine.begin() as conn:
        conn.execute(delete(node_settings).where(node_settings.c.name == HEAD_SETTING))


def test_a_write_is_audited_in_its_own_transaction(client, node):
    assert client.put("/fhir/Patient/p1", json=patient(), headers=JSON).status_code == 201
    assert client.put("/fhir/Observation/o1", json=observation(), headers=JSON).status_code == 201
    assert client.delete("/fhir/Observation/o1").status_code == 204
    events = audit_events(node)
    codes = sorted(e["subtype"][0]["code"] for e in events)
    assert codes == ["delete", "update", "update"]  # PUT is audited as an update
    for event in events:  # stored without re-validation: the builders' output is valid R4
        validate_resource(event)
    everything = audit_events(node, tokens=True)
    assert verify_log(node.store, everything).ok
    assert head(node.store.engine).sequence == len(everything) == 3 + 1  # + the token


def test_a_write_whose_audit_fails_leaves_nothing_stored(client, node):
    assert client.put("/fhir/Patient/p1", json=patient(), headers=JSON).status_code == 201
    before = {t: count(node, t) for t in ("Patient", "Observation", "AuditEvent")}
    drop_head(node)

    created = client.post("/fhir/Observation", json=observation(), headers=JSON)
    assert created.status_code == 500
    updated = client.put("/fhir/Patient/p1", json=patient() | {"gender": "female"}, headers=JSON)
    assert updated.status_code == 500
    assert client.delete("/fhir/Patient/p1").status_code == 500
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": observation("o2"),
                "request": {"method": "PUT", "url": "Observation/o2"},
            }
        ],
    }
    assert client.post("/fhir", json=bundle, headers=JSON).status_code == 500

    assert {t: count(node, t) for t in before} == before  # no version, no event
    with node.store.engine.connect() as conn:
        current = conn.execute(
            select(resources.c.version_id, resources.c.deleted).where(
                resources.c.res_type == "Patient", resources.c.res_id == "p1"
            )
        ).one()
    assert tuple(current) == (1, False)
    assert node.store.read("Patient", "p1").get("gender") is None


@pytest.fixture
def patient_web(app, node, cx):
    cx.put(node, patient())
    return cx.bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.cruds",
        context={"patient": "p1"},
    )


def test_share_is_audited_once_with_its_write(app, node, patient_web):
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}}],
    }
    client = app.test_client()
    shared = client.post("/fhir/Patient/p1/$share", json=body, headers={**JSON, **patient_web})
    assert shared.status_code == 201
    creates = [e for e in audit_events(node) if e["subtype"][0]["code"] == "create"]
    consent_refs = [
        e["what"]["reference"]
        for event in creates
        for e in event["entity"]
        if e["what"].get("reference", "").startswith("Consent/")
    ]
    assert len(consent_refs) == 1  # recorded with the write; the route's copy is not added

    drop_head(node)
    before = count(node, "Consent")
    again = client.post("/fhir/Patient/p1/$share", json=body, headers={**JSON, **patient_web})
    assert again.status_code == 500
    assert count(node, "Consent") == before
