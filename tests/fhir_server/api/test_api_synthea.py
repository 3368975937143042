"""All 25 Synthea R4 bundles of ../shared load as transactions over HTTP (SQLite)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture
def synthea_files(shared_dir):
    folder = shared_dir / "data" / "synthea-r4"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        pytest.skip(f"no Synthea bundles in {folder}")
    return files


@pytest.fixture
def sqlite_client(sqlite_node, make_app):
    return make_app(sqlite_node).test_client()


@pytest.mark.slow
def test_synthea_bundles_load_and_everything(sqlite_client, synthea_files):
    client = sqlite_client
    assert len(synthea_files) == 25
    expected: Counter[str] = Counter()
    patients: dict[str, Counter[str]] = {}
    for path in synthea_files:
        bundle = json.loads(path.read_bytes())
        assert bundle["type"] == "transaction"
        response = client.post("/fhir", data=path.read_bytes(), headers=JSON)
        assert response.status_code == 200, (path.name, response.get_data(as_text=True)[:500])
        body = response.get_json()
        assert body["type"] == "transaction-response"
        assert len(body["entry"]) == len(bundle["entry"])
        assert all(e["response"]["status"].startswith("201") for e in body["entry"])
        types = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
        expected += types
        patient_id = next(
            e["response"]["location"].split("/")[1]
            for e in body["entry"]
            if e["response"]["location"].startswith("Patient/")
        )
        patients[patient_id] = types

    for res_type, count in expected.items():
        total = client.get(f"/fhir/{res_type}/_history", query_string={"_count": 0}).get_json()
        assert total["total"] == count, res_type
    system = client.get("/fhir/_history", query_string={"_count": 0}).get_json()
    assert system["total"] == sum(expected.values())

    # $everything of one patient: its compartment resources (all with subject/patient refs)
    patient_id, types = next(iter(patients.items()))
    everything = client.get(f"/fhir/Patient/{patient_id}/$everything").get_json()
    got = Counter(e["resource"]["resourceType"] for e in everything["entry"])
    assert got["Patient"] == 1
    for res_type in ("Observation", "Encounter", "Condition", "Claim", "ExplanationOfBenefit"):
        assert got[res_type] == types[res_type], res_type
    for entry in everything["entry"]:
        resource = entry["resource"]
        subject = resource.get("subject") or resource.get("patient")
        if resource["resourceType"] in ("Observation", "Encounter", "Condition"):
            assert subject["reference"] == f"Patient/{patient_id}"
    # the referenced providers come along
    assert got["Organization"] >= 1
    assert got["Practitioner"] >= 1
    search = client.get(
        "/fhir/Observation", query_string={"subject": f"Patient/{patient_id}", "_count": 0}
    )
    assert search.get_json()["total"] == types["Observation"]
