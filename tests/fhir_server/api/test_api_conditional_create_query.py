"""Issue 15: ``POST [type]?criteria`` is a conditional create (what fhirpy's
``get_or_create`` sends), exactly like ``If-None-Exist``: one readable match is
answered 200 with it, several are a 412, a match the caller may not read is no
match (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

from tests.fhir_server.api import enforcement_data as data
from tests.fhir_server.api.enforcement_data import obs

app, seeded, p1 = data.app, data.seeded, data.p1  # fixtures: auth-on app, seeded node, p1


def patient(value: str, family: str = "Cond") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": value}],
        "name": [{"family": family}],
    }


def count(client, query: str) -> int:
    return client.get(f"/fhir/Patient?{query}&_summary=count").json["total"]


def test_criteria_in_the_url_make_a_conditional_create(client):
    first = client.post("/fhir/Patient?identifier=urn:mrn|A-1", json=patient("A-1"))
    assert first.status_code == 201, first.text
    again = client.post("/fhir/Patient?identifier=urn:mrn|A-1", json=patient("A-1", "Other"))
    assert again.status_code == 200, again.text
    assert again.json["id"] == first.json["id"]
    assert again.json["name"][0]["family"] == "Cond"  # the existing one, unchanged
    assert again.headers["Location"].endswith(f"/Patient/{first.json['id']}/_history/1")
    assert count(client, "identifier=urn:mrn|A-1") == 1
    # several criteria, all must match
    both = client.post("/fhir/Patient?identifier=urn:mrn|A-1&family=Cond", json=patient("A-1"))
    assert both.status_code == 200 and both.json["id"] == first.json["id"]
    neither = client.post("/fhir/Patient?identifier=urn:mrn|A-1&family=Else", json=patient("A-1"))
    assert neither.status_code == 201
    assert count(client, "identifier=urn:mrn|A-1") == 2


def test_two_matches_are_412(client):
    for _ in range(2):
        assert client.post("/fhir/Patient", json=patient("DUP")).status_code == 201
    r = client.post("/fhir/Patient?identifier=urn:mrn|DUP", json=patient("DUP"))
    assert r.status_code == 412, r.text
    assert r.json["resourceType"] == "OperationOutcome"
    assert count(client, "identifier=urn:mrn|DUP") == 2


def test_format_is_not_a_criterion(client):
    for _ in range(2):
        r = client.post("/fhir/Patient?_format=json", json=patient("FMT"))
        assert r.status_code == 201, r.text
    r = client.post("/fhir/Patient?_format=json&identifier=urn:mrn|FMT", json=patient("FMT"))
    assert r.status_code == 412  # the criterion is applied, _format is not one
    assert client.post("/fhir/Patient?_pretty=true", json=patient("FMT")).status_code == 201
    assert count(client, "identifier=urn:mrn|FMT") == 3


def test_unknown_or_result_control_criteria_are_refused(client):
    r = client.post("/fhir/Patient?nonsense=1", json=patient("BAD"))
    assert r.status_code == 400, r.text
    r = client.post("/fhir/Patient?identifier=urn:mrn|BAD&_count=1", json=patient("BAD"))
    assert r.status_code == 400, r.text
    assert count(client, "identifier=urn:mrn|BAD") == 0


def test_header_and_url_criteria(client):
    url = "/fhir/Patient?identifier=urn:mrn|H-1"
    assert client.post(url, json=patient("H-1")).status_code == 201
    same = {"If-None-Exist": "identifier=urn:mrn|H-1"}
    assert client.post(url, json=patient("H-1"), headers=same).status_code == 200
    other = {"If-None-Exist": "identifier=urn:mrn|H-2"}
    assert client.post(url, json=patient("H-1"), headers=other).status_code == 400
    assert count(client, "identifier=urn:mrn|H-1") == 1


def test_a_match_the_caller_may_not_read_is_no_match(p1, seeded):
    # o2 is p2's and carries urn:x|secret-id: p1's token must neither see nor reuse it
    url = "/fhir/Observation?identifier=urn:x|secret-id"
    body = obs("ignored", "p1", "N", identifier=[{"system": "urn:x", "value": "secret-id"}])
    mine = p1.post(url, json=body)
    assert mine.status_code == 201, mine.text
    assert mine.json["id"] != "o2"
    assert mine.json["subject"]["reference"] == "Patient/p1"
    # now p1 has one of its own: that is the match (200), still not p2's
    again = p1.post(url, json=body)
    assert again.status_code == 200 and again.json["id"] == mine.json["id"]
    # the backend sees both: two matches
    assert seeded.post(url, json=body).status_code == 412
    assert seeded.get("/fhir/Observation/o2").json["meta"]["versionId"] == "1"


def test_transaction_post_entry_with_criteria_in_the_url(client):
    existing = client.post("/fhir/Patient", json=patient("TX-1")).json
    entry = {"request": {"method": "POST", "url": "Patient?identifier=urn:mrn|TX-1"}}
    entry["resource"] = patient("TX-1", "Ignored")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    assert r.json["entry"][0]["response"]["status"] == "200 OK"
    assert r.json["entry"][0]["response"]["location"].startswith(f"Patient/{existing['id']}/")
    assert count(client, "identifier=urn:mrn|TX-1") == 1
    entry["request"]["ifNoneExist"] = "identifier=urn:mrn|TX-2"
    assert client.post("/fhir", json=bundle).status_code == 400
    batch_entry = {
        "request": {"method": "POST", "url": "Patient?identifier=urn:mrn|TX-3"},
        "resource": patient("TX-3"),
    }
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [batch_entry]}
    for status in ("201 Created", "200 OK"):
        r = client.post("/fhir", json=batch)
        assert r.json["entry"][0]["response"]["status"] == status, r.text
    assert count(client, "identifier=urn:mrn|TX-3") == 1
    # ifNoneExist in a batch entry: the same (it was answered 409 before)
    batch_entry["request"] = {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:mrn|TX-3",
    }
    r = client.post("/fhir", json=batch)
    assert r.json["entry"][0]["response"]["status"] == "200 OK", r.text
    assert count(client, "identifier=urn:mrn|TX-3") == 1


def test_fhirpy_get_or_create(live_server, live_headers):
    from fhirpy import SyncFHIRClient

    fhir = SyncFHIRClient(live_server, authorization=live_headers["Authorization"])
    value = f"GOC-{uuid.uuid4().hex[:8]}"
    resource = fhir.resource("Patient", **patient(value))
    search = fhir.resources("Patient").search(identifier=f"urn:mrn|{value}")
    first, created = search.get_or_create(resource)
    assert created is True
    second, created = search.get_or_create(fhir.resource("Patient", **patient(value)))
    assert created is False and second.id == first.id
    assert search.count() == 1
    # resource.create(**criteria): the same conditional create
    other = fhir.resource("Patient", **patient(value, "Again"))
    other.create(identifier=f"urn:mrn|{value}")
    assert other.id == first.id and search.count() == 1
