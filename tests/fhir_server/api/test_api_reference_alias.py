"""``patient`` and the other narrower reference params are served from the wider
param's rows (search_params.reference_alias): every way of searching by them
answers as if they had rows of their own."""

from __future__ import annotations

from sqlalchemy import select

from fhir_server.search.tables import sidx_ref
from fhir_server.storage.db import resources

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def put(client, resource: dict) -> None:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=JSON)
    assert response.status_code == 201, response.get_json()


def observation(oid: str, subject: str | None, code: str = "x") -> dict:
    coding = [{"system": "http://loinc.org", "code": code}]
    resource = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": coding},
    }
    if subject:
        resource["subject"] = {"reference": subject}
    return resource


def _world(client) -> None:
    put(client, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Alias"}]})
    put(client, {"resourceType": "Patient", "id": "p2", "name": [{"family": "Other"}]})
    put(client, {"resourceType": "Group", "id": "g1", "type": "person", "actual": True})
    put(client, observation("on-patient", "Patient/p1", "2339-0"))
    put(client, observation("on-group", "Group/g1"))
    put(client, observation("elsewhere", "http://other.example/fhir/Patient/p9"))
    put(client, observation("no-subject", None))


def ids(client, query: str) -> list[str]:
    bundle = client.get(f"/fhir/{query}").get_json()
    assert bundle["resourceType"] == "Bundle", bundle
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


def test_no_rows_are_stored_under_the_narrower_param(client, node):
    _world(client)
    with node.engine.connect() as conn:
        query = (
            select(sidx_ref.c.param)
            .join(resources, resources.c.pk == sidx_ref.c.resource_pk)
            .where(resources.c.res_type == "Observation")
            .distinct()
        )
        params = set(conn.execute(query).scalars())
    assert "subject" in params and "patient" not in params


def test_patient_search_matches_only_patient_targets(client):
    _world(client)
    assert ids(client, "Observation?patient=p1") == ["on-patient"]
    assert ids(client, "Observation?patient=Patient/p1") == ["on-patient"]
    assert ids(client, "Observation?patient=g1") == []  # a Group is no patient
    assert ids(client, "Observation?subject=g1") == ["on-group"]
    assert ids(client, "Observation?patient=http://other.example/fhir/Patient/p9") == ["elsewhere"]
    assert ids(client, "Observation?patient:missing=true") == ["no-subject", "on-group"]
    assert ids(client, "Observation?patient:missing=false") == ["elsewhere", "on-patient"]


def test_chains_has_include_and_revinclude_through_the_alias(client):
    _world(client)
    assert ids(client, "Observation?patient.family=Alias") == ["on-patient"]
    assert ids(client, "Patient?_has:Observation:patient:code=http://loinc.org|2339-0") == ["p1"]
    included = ids(client, "Observation?_id=on-patient&_include=Observation:patient")
    assert included == ["on-patient", "p1"]
    assert ids(client, "Observation?_id=on-group&_include=Observation:patient") == ["on-group"]
    revincluded = ids(client, "Patient?_id=p1,p2&_revinclude=Observation:patient")
    assert revincluded == ["on-patient", "p1", "p2"]
