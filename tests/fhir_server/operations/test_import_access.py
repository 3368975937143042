"""``$import-mhb`` decides access only through the request's policy (issue #14).

Each imported resource of the patient's record is checked like a REST write of it
(scopes, the token's patient compartment, consent), so a token that may not write
some of a patient's data cannot import it -- a Consent sharing only some classes
read-write no longer lets a practitioner import every category -- while a token
that may write the patient's record (the patient, a practitioner with a read-write
share of everything, the node's own services) imports it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from fhir_server.storage.db import versions

FIXTURE = Path(__file__).resolve().parents[2] / "mhb_import" / "fixtures" / "scenario_patient.json"
JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def web(app, node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lin"}]})
    cx.put(node, {"resourceType": "Patient", "id": "p2"})

    class Web:
        client = app.test_client()
        patient = cx.bearer(
            app,
            username="alice",
            fhir_user="Patient/p1",
            scope="patient/*.cruds",
            context={"patient": "p1"},
        )
        other_patient = cx.bearer(
            app,
            username="carol",
            fhir_user="Patient/p2",
            scope="patient/*.cruds",
            context={"patient": "p2"},
        )
        doctor = cx.bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.cruds")
        system = cx.bearer(app, scope="system/*.cruds")

    Web.node = node
    return Web


def clinical_versions(node) -> int:
    """Stored versions other than the access log and the fixtures' Consents."""
    with node.engine.connect() as conn:
        query = select(func.count()).select_from(versions)
        kept = versions.c.res_type.not_in(["AuditEvent", "Consent"])
        return conn.execute(query.where(kept)).scalar_one()


def import_mhb(web, headers, patient="p1"):
    return web.client.post(
        f"/fhir/Patient/{patient}/$import-mhb",
        data=FIXTURE.read_bytes(),
        content_type="application/octet-stream",
        headers=headers,
    )


def share(web, *, access="read-write", classes=()):
    """The patient shares their record with Practitioner/d1."""
    parameters = [
        {"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}},
        {"name": "access", "valueCode": access},
        *({"name": "class", "valueCode": c} for c in classes),
    ]
    body = {"resourceType": "Parameters", "parameter": parameters}
    response = web.client.post(
        "/fhir/Patient/p1/$share", json=body, headers={**JSON, **web.patient}
    )
    assert response.status_code == 201, response.get_json()


def test_practitioner_without_consent_cannot_import(web):
    stored = clinical_versions(web.node)
    response = import_mhb(web, web.doctor)
    assert response.status_code == 403, response.get_json()
    assert clinical_versions(web.node) == stored


def test_read_only_share_does_not_permit_an_import(web):
    share(web, access="read")
    stored = clinical_versions(web.node)
    assert import_mhb(web, web.doctor).status_code == 403
    assert clinical_versions(web.node) == stored


def test_share_of_some_classes_does_not_permit_importing_the_others(web):
    """The regression: the import used to ask consent for its Provenance only, then
    write every category the export holds (Conditions, prescriptions, claims...)."""
    share(web, classes=["Provenance", "Encounter"])
    stored = clinical_versions(web.node)
    response = import_mhb(web, web.doctor)
    assert response.status_code == 403, response.get_json()
    assert "consent" in response.get_json()["issue"][0]["diagnostics"]
    assert clinical_versions(web.node) == stored  # nothing, not even the Encounters


def test_read_write_share_of_the_record_permits_the_import(web):
    share(web)
    response = import_mhb(web, web.doctor)
    assert response.status_code == 200, response.get_json()
    conditions = web.client.get("/fhir/Condition?patient=p1", headers=web.system).get_json()
    assert conditions["total"] == 5


def test_the_patient_imports_into_their_own_record_only(web):
    stored = clinical_versions(web.node)
    assert import_mhb(web, web.other_patient).status_code == 403  # p2's token, p1's record
    assert clinical_versions(web.node) == stored
    own = import_mhb(web, web.patient)
    assert own.status_code == 200, own.get_json()
    again = import_mhb(web, web.patient)  # unchanged: nothing written, still permitted
    assert again.status_code == 200, again.get_json()
    # the patient's token wrote the import's records outside its compartment too
    # (the Organizations of the export's institutions, the import's Provenance)
    found = web.client.get("/fhir/Organization", headers=web.system).get_json()
    assert found["total"] >= 1


def test_node_service_imports_for_any_patient(web):
    response = import_mhb(web, web.system, patient="p2")
    assert response.status_code == 200, response.get_json()
