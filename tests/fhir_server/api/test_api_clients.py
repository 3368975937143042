"""Real FHIR client libraries against a node served over HTTP: fhirclient and fhirpy."""

from __future__ import annotations

import uuid

import pytest


def test_fhirclient_create_read_search(live_server, live_headers):
    from fhirclient import client
    from fhirclient.models.patient import Patient

    family = f"Pyclient{uuid.uuid4().hex[:8]}"
    smart = client.FHIRClient(settings={"app_id": "phrx-tests", "api_base": live_server + "/"})
    smart.server.session.headers.update(live_headers)  # a backend-services token
    assert smart.server.capabilityStatement is None or smart.server.capabilityStatement.fhirVersion
    smart.server.prepare()
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"
    patient = Patient(
        {
            "name": [{"family": family, "given": ["Ada"]}],
            "gender": "female",
            "birthDate": "1980-02-03",
        }
    )
    created = patient.create(smart.server)
    assert created["resourceType"] == "Patient"
    pid = created["id"]
    assert created["meta"]["versionId"] == "1"

    read = Patient.read(pid, smart.server)
    assert read.id == pid
    assert read.name[0].family == family
    assert read.birthDate.isostring == "1980-02-03"
    assert read.meta.versionId == "1"

    found = Patient.where(struct={"family": family}).perform_resources(smart.server)
    assert [p.id for p in found] == [pid]
    none = Patient.where(struct={"family": "Nobody" + family}).perform_resources(smart.server)
    assert none == []


def test_fhirpy_create_read_search_update(live_server, live_headers):
    from fhirpy import SyncFHIRClient

    family = f"Fhirpy{uuid.uuid4().hex[:8]}"
    fhir = SyncFHIRClient(
        live_server,
        authorization=live_headers["Authorization"],
        extra_headers={"Accept": "application/fhir+json"},
    )
    patient = fhir.resource("Patient", name=[{"family": family, "given": ["Bo"]}], gender="male")
    patient.save()
    pid = patient.id
    assert pid
    assert patient["meta"]["versionId"] == "1"

    read = fhir.reference("Patient", pid).to_resource()
    assert read["name"][0]["family"] == family
    assert read["gender"] == "male"

    found = fhir.resources("Patient").search(family=family).fetch()
    assert [p.id for p in found] == [pid]
    assert fhir.resources("Patient").search(family=family).count() == 1

    read["gender"] = "other"
    read.save()
    again = fhir.reference("Patient", pid).to_resource()
    assert again["gender"] == "other"
    assert again["meta"]["versionId"] == "2"

    condition = fhir.resource("Condition", subject=read.to_reference(), code={"text": "Hay fever"})
    condition.save()
    mine = fhir.resources("Condition").search(subject=f"Patient/{pid}").fetch()
    assert [c.id for c in mine] == [condition.id]


def test_fhirpy_sees_server_errors(live_server, live_headers):
    from fhirpy import SyncFHIRClient
    from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

    fhir = SyncFHIRClient(live_server, authorization=live_headers["Authorization"])
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", "does-not-exist").to_resource()
    bad = fhir.resource("Patient", birthDate="not-a-date")
    with pytest.raises(OperationOutcome) as caught:
        bad.save()
    assert "birthDate" in str(caught.value)
