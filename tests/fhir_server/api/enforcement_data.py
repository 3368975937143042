"""Shared data and fixtures of the issue-3 enforcement tests (test_api_enforcement*.py):
patients p1 / p2 with crosswise references, authentication on."""

from __future__ import annotations

import pytest

from fhir_server.app import create_app

LAB = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
        }
    ]
}
VITAL = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }
    ]
}


def obs(oid, subject, code, category=LAB, **extra):
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [category],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{subject}"},
        **extra,
    }


SEED = [
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "Alpha"}]},
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "Beta"}]},
    {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Doc"}]},
    # p1's, pointing at p2 (focus is not a compartment param) and a practitioner
    obs(
        "o1",
        "p1",
        "A",
        focus=[{"reference": "Patient/p2"}],
        performer=[{"reference": "Practitioner/d1"}],
    ),
    obs("o1v", "p1", "V", category=VITAL),
    obs("o2", "p2", "B", identifier=[{"system": "urn:x", "value": "secret-id"}]),
    # p2's, pointing at p1: must not confirm anything through p1's _has / _revinclude
    obs("o3", "p2", "B", focus=[{"reference": "Patient/p1"}]),
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "c1"},
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "subject": {"reference": "Patient/p2"},
        "code": {"text": "c2"},
    },
]


@pytest.fixture
def app(node):
    """Authentication on (the default), whatever the directory's conftest says."""
    return create_app({"NODE": node, "TESTING": True})


@pytest.fixture
def seeded(client):
    for resource in SEED:
        r = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource)
        assert r.status_code in (200, 201), r.text
    # o5 moved from p2 to p1: its first version is p2's data
    assert client.put("/fhir/Observation/o5", json=obs("o5", "p2", "M")).status_code == 201
    assert client.put("/fhir/Observation/o5", json=obs("o5", "p1", "M")).status_code == 200
    # o6 of p2, deleted
    assert client.put("/fhir/Observation/o6", json=obs("o6", "p2", "D")).status_code == 201
    assert client.delete("/fhir/Observation/o6").status_code == 204
    return client


@pytest.fixture
def p1(seeded, patient_client):
    return patient_client("p1", "launch/patient patient/*.cruds")


def ids_of(bundle: dict, mode: str | None = None) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e and (mode is None or e.get("search", {}).get("mode") == mode)
    }


def assert_missing(response, where: str):
    assert response.status_code == 404, response.text
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"
    assert body["issue"][0]["diagnostics"] == f"{where} is not known."
