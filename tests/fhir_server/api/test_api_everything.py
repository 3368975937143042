"""Patient/{id}/$everything (R4 patient-operation-everything)."""

from __future__ import annotations

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def put(client, resource: dict) -> None:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=JSON)
    assert response.status_code == 201, response.get_json()


def _world(client) -> None:
    put(client, {"resourceType": "Organization", "id": "org-1", "name": "Clinic"})
    put(client, {"resourceType": "Organization", "id": "org-2", "name": "Hospital"})
    put(client, {"resourceType": "Organization", "id": "org-unrelated", "name": "Elsewhere"})
    put(client, {"resourceType": "Practitioner", "id": "dr-1", "name": [{"family": "Who"}]})
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "pat-1",
            "name": [{"family": "Everything"}],
            "managingOrganization": {"reference": "Organization/org-1"},
        },
    )
    put(client, {"resourceType": "Patient", "id": "pat-2", "name": [{"family": "Other"}]})
    put(
        client,
        {
            "resourceType": "Encounter",
            "id": "enc-1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/pat-1"},
            "serviceProvider": {"reference": "Organization/org-2"},
        },
    )
    for cid, pid in [("cond-1", "pat-1"), ("cond-2", "pat-1"), ("cond-other", "pat-2")]:
        put(
            client,
            {
                "resourceType": "Condition",
                "id": cid,
                "subject": {"reference": f"Patient/{pid}"},
                "code": {"text": cid},
            },
        )
    put(
        client,
        {
            "resourceType": "Observation",
            "id": "obs-1",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "Patient/pat-1"},
            "performer": [{"reference": "Practitioner/dr-1"}],
        },
    )
    put(
        client,
        {
            "resourceType": "Observation",
            "id": "obs-deleted",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "Patient/pat-1"},
        },
    )
    assert client.delete("/fhir/Observation/obs-deleted").status_code == 204


def _keys(bundle: dict) -> set[tuple[str, str]]:
    return {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle.get("entry", [])}


def test_everything_returns_compartment_and_referenced(client):
    _world(client)
    response = client.get("/fhir/Patient/pat-1/$everything")
    assert response.status_code == 200
    bundle = response.get_json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert _keys(bundle) == {
        ("Patient", "pat-1"),
        ("Encounter", "enc-1"),
        ("Condition", "cond-1"),
        ("Condition", "cond-2"),
        ("Observation", "obs-1"),
        ("Organization", "org-1"),
        ("Organization", "org-2"),
        ("Practitioner", "dr-1"),
    }
    assert bundle["total"] == 8
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"].endswith(f"/fhir/{resource['resourceType']}/{resource['id']}")
        assert resource["meta"]["versionId"] == "1"


def test_everything_type_filter(client):
    _world(client)
    bundle = client.get(
        "/fhir/Patient/pat-1/$everything", query_string={"_type": "Condition"}
    ).get_json()
    assert _keys(bundle) == {("Condition", "cond-1"), ("Condition", "cond-2")}


def test_everything_type_filter_keeps_referenced_types(client):
    _world(client)
    both = client.get(
        "/fhir/Patient/pat-1/$everything", query_string={"_type": "Condition,Organization"}
    ).get_json()
    assert _keys(both) == {
        ("Condition", "cond-1"),
        ("Condition", "cond-2"),
        ("Organization", "org-1"),
        ("Organization", "org-2"),
    }


def test_everything_paging(client):
    _world(client)
    first = client.get("/fhir/Patient/pat-1/$everything", query_string={"_count": 5}).get_json()
    assert first["total"] == 8
    assert len(first["entry"]) == 5
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    path = next_url.split("://", 1)[1].split("/", 1)[1]
    second = client.get("/" + path).get_json()
    assert len(second["entry"]) == 3
    assert _keys(first) | _keys(second) == _keys(
        client.get("/fhir/Patient/pat-1/$everything").get_json()
    )


def test_everything_other_patient_is_separate(client):
    _world(client)
    bundle = client.get("/fhir/Patient/pat-2/$everything").get_json()
    assert _keys(bundle) == {("Patient", "pat-2"), ("Condition", "cond-other")}


def test_everything_unknown_patient_404(client):
    response = client.get("/fhir/Patient/nobody/$everything")
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"


def test_everything_bad_type_400(client):
    _world(client)
    response = client.get("/fhir/Patient/pat-1/$everything", query_string={"_type": "Bogus"})
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_everything_of_deleted_patient_410(client):
    _world(client)
    assert client.delete("/fhir/Patient/pat-2").status_code == 204
    assert client.get("/fhir/Patient/pat-2/$everything").status_code == 410
