"""batch and transaction Bundles (FHIR R4 http.html#transaction), incl. concurrent writers."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def tx(entries: list[dict], kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def post_entry(resource: dict, full_url: str | None = None, **request) -> dict:
    entry = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def patient(mrn: str, family: str = "Tx") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": mrn}],
        "name": [{"family": family}],
    }


def observation(subject: str, value: float = 1.0) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": "cm"},
    }


def send(client, bundle: dict):
    return client.post("/fhir", json=bundle, headers=JSON)


def total_versions(client) -> int:
    return client.get("/fhir/_history").get_json()["total"]


def location_id(entry: dict) -> str:
    return entry["response"]["location"].split("/")[1]


# -- transaction ------------------------------------------------------------------------
def test_transaction_rewrites_urn_uuid_references(client):
    p_urn, o_urn = urn(), urn()
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": p_urn},
        "serviceProvider": {"reference": o_urn},
    }
    bundle = tx(
        [
            post_entry(observation(p_urn), urn()),
            post_entry(encounter, urn()),
            post_entry(patient("U-1"), p_urn),
            post_entry({"resourceType": "Organization", "name": "Clinic"}, o_urn),
        ]
    )
    response = send(client, bundle)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "transaction-response"
    entries = body["entry"]
    assert len(entries) == 4
    assert [e["response"]["location"].split("/")[0] for e in entries] == [
        "Observation",
        "Encounter",
        "Patient",
        "Organization",
    ]
    for entry in entries:
        assert entry["response"]["status"].startswith("201")
        assert entry["response"]["etag"] == 'W/"1"'
        assert entry["response"]["location"].endswith("/_history/1")
        assert "lastModified" in entry["response"]
    pid, oid = location_id(entries[2]), location_id(entries[3])
    obs = client.get(f"/fhir/Observation/{location_id(entries[0])}").get_json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    enc = client.get(f"/fhir/Encounter/{location_id(entries[1])}").get_json()
    assert enc["subject"]["reference"] == f"Patient/{pid}"
    assert enc["serviceProvider"]["reference"] == f"Organization/{oid}"
    assert client.get(f"/fhir/Patient/{pid}").get_json()["identifier"][0]["value"] == "U-1"


def test_transaction_unresolved_urn_is_rejected(client):
    bundle = tx([post_entry(observation(urn()), urn())])
    response = send(client, bundle)
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[0]" in response.get_json()["issue"][0]["diagnostics"]
    assert total_versions(client) == 0


def test_transaction_conditional_reference(client):
    existing = client.post("/fhir/Patient", json=patient("COND-7"), headers=JSON).get_json()
    bundle = tx([post_entry(observation("Patient?identifier=urn:test:mrn|COND-7"), urn())])
    response = send(client, bundle)
    assert response.status_code == 200, response.get_json()
    oid = location_id(response.get_json()["entry"][0])
    obs = client.get(f"/fhir/Observation/{oid}").get_json()
    assert obs["subject"]["reference"] == f"Patient/{existing['id']}"
    # no match: the whole transaction fails with 412
    before = total_versions(client)
    missing = send(client, tx([post_entry(observation("Patient?identifier=urn:test:mrn|NOPE"))]))
    assert missing.status_code == 412
    assert total_versions(client) == before


def test_transaction_if_none_exist(client):
    existing = client.post("/fhir/Patient", json=patient("INE-1"), headers=JSON).get_json()
    p_urn = urn()
    bundle = tx(
        [
            post_entry(
                patient("INE-1", family="Ignored"),
                p_urn,
                ifNoneExist="identifier=urn:test:mrn|INE-1",
            ),
            post_entry(patient("INE-2"), urn(), ifNoneExist="identifier=urn:test:mrn|INE-2"),
            post_entry(observation(p_urn), urn()),
        ]
    )
    response = send(client, bundle)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    assert entries[0]["response"]["status"].startswith("200")
    assert location_id(entries[0]) == existing["id"]
    assert entries[1]["response"]["status"].startswith("201")
    assert entries[2]["response"]["status"].startswith("201")
    obs = client.get(f"/fhir/Observation/{location_id(entries[2])}").get_json()
    assert obs["subject"]["reference"] == f"Patient/{existing['id']}"
    kept = client.get(f"/fhir/Patient/{existing['id']}").get_json()
    assert kept["name"][0]["family"] == "Tx"
    assert kept["meta"]["versionId"] == "1"


def test_transaction_processing_order_and_response_order(client):
    keep = client.put("/fhir/Patient/ord-a", json={**patient("ORD-A"), "id": "ord-a"}, headers=JSON)
    assert keep.status_code == 201
    client.put("/fhir/Patient/ord-b", json={**patient("ORD-B"), "id": "ord-b"}, headers=JSON)
    bundle = tx(
        [
            {"request": {"method": "GET", "url": "Patient/ord-a"}},
            {
                "resource": {**patient("ORD-A", family="Changed"), "id": "ord-a"},
                "request": {"method": "PUT", "url": "Patient/ord-a"},
            },
            {"request": {"method": "GET", "url": "Patient?identifier=urn:test:mrn|ORD-NEW"}},
            post_entry(patient("ORD-NEW"), urn()),
            {"request": {"method": "DELETE", "url": "Patient/ord-b"}},
        ]
    )
    response = send(client, bundle)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    statuses = [e["response"]["status"].split()[0] for e in entries]
    assert statuses == ["200", "200", "200", "201", "204"]
    # GET runs after PUT: it sees version 2
    assert entries[0]["resource"]["name"][0]["family"] == "Changed"
    assert entries[0]["resource"]["meta"]["versionId"] == "2"
    assert entries[1]["response"]["etag"] == 'W/"2"'
    assert entries[1]["response"]["location"] == "Patient/ord-a/_history/2"
    # GET (search) runs after POST: it finds the new patient
    search = entries[2]["resource"]
    assert search["type"] == "searchset"
    assert [e["resource"]["id"] for e in search["entry"]] == [location_id(entries[3])]
    assert client.get("/fhir/Patient/ord-b").status_code == 410


def test_transaction_put_and_conditional_put(client):
    bundle = tx(
        [
            {
                "resource": {**patient("PUT-1"), "id": "put-one"},
                "request": {"method": "PUT", "url": "Patient/put-one"},
            },
            {
                "resource": patient("PUT-2"),
                "request": {"method": "PUT", "url": "Patient?identifier=urn:test:mrn|PUT-2"},
            },
        ]
    )
    response = send(client, bundle)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == ["201", "201"]
    assert entries[0]["response"]["location"] == "Patient/put-one/_history/1"
    new_id = location_id(entries[1])
    assert client.get(f"/fhir/Patient/{new_id}").get_json()["identifier"][0]["value"] == "PUT-2"


def test_transaction_atomic_when_last_entry_invalid(client):
    client.post("/fhir/Patient", json=patient("PRE"), headers=JSON)
    before = total_versions(client)
    p_urn = urn()
    bundle = tx(
        [
            post_entry(patient("ATOM-1"), p_urn),
            post_entry(observation(p_urn), urn()),
            post_entry({"resourceType": "Observation", "code": {"text": "no status"}}, urn()),
        ]
    )
    response = send(client, bundle)
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["Observation.status"]
    assert "Bundle.entry[2]" in issue["diagnostics"]
    assert total_versions(client) == before
    assert client.get("/fhir/Observation/_history").get_json()["total"] == 0


def test_transaction_atomic_when_last_entry_fails_during_execution(client):
    client.put("/fhir/Patient/atom-x", json={**patient("X"), "id": "atom-x"}, headers=JSON)
    before = total_versions(client)
    p_urn = urn()
    bundle = tx(
        [
            post_entry(patient("ATOM-2"), p_urn),
            post_entry(observation(p_urn), urn()),
            {"request": {"method": "DELETE", "url": "Patient/nonexistent"}},
            {
                "resource": {**patient("X", family="Stale"), "id": "atom-x"},
                "request": {"method": "PUT", "url": "Patient/atom-x", "ifMatch": 'W/"7"'},
            },
        ]
    )
    response = send(client, bundle)
    assert response.status_code == 412
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[3]" in body["issue"][0]["diagnostics"]
    assert total_versions(client) == before
    assert client.get("/fhir/Observation/_history").get_json()["total"] == 0
    assert client.get("/fhir/Patient/atom-x").get_json()["name"][0]["family"] == "Tx"


def test_transaction_with_bad_entry_request_is_400(client):
    bundle = tx([{"resource": patient("Z")}])
    response = send(client, bundle)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["Bundle.entry[0].request"]
    patch = tx([{"request": {"method": "PATCH", "url": "Patient/x"}}])
    assert send(client, patch).status_code == 400
    mismatch = tx(
        [post_entry(patient("Z")) | {"request": {"method": "POST", "url": "Observation"}}]
    )
    assert send(client, mismatch).status_code == 400
    assert total_versions(client) == 0


# -- batch --------------------------------------------------------------------------------
def test_batch_entries_are_independent(client):
    bundle = tx(
        [
            post_entry(patient("B-1")),
            post_entry({"resourceType": "Observation", "code": {"text": "no status"}}),
            {"request": {"method": "GET", "url": "Patient/not-there"}},
            {
                "resource": {**patient("B-2"), "id": "batch-two"},
                "request": {"method": "PUT", "url": "Patient/batch-two"},
            },
            {
                "resource": {**patient("B-3"), "id": "batch-three"},
                "request": {"method": "PUT", "url": "Patient/batch-three", "ifMatch": 'W/"4"'},
            },
        ],
        kind="batch",
    )
    response = send(client, bundle)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["type"] == "batch-response"
    entries = body["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == [
        "201",
        "400",
        "404",
        "201",
        "412",
    ]
    bad = entries[1]["response"]["outcome"]
    assert bad["resourceType"] == "OperationOutcome"
    assert bad["issue"][0]["expression"] == ["Observation.status"]
    assert entries[2]["response"]["outcome"]["issue"][0]["code"] == "not-found"
    assert client.get(f"/fhir/Patient/{location_id(entries[0])}").status_code == 200
    assert client.get("/fhir/Patient/batch-two").status_code == 200
    assert client.get("/fhir/Patient/batch-three").status_code == 404
    assert client.get("/fhir/Observation/_history").get_json()["total"] == 0


def test_batch_get_entries_return_resources(client):
    client.put("/fhir/Patient/bg-1", json={**patient("BG"), "id": "bg-1"}, headers=JSON)
    bundle = tx(
        [
            {"request": {"method": "GET", "url": "Patient/bg-1"}},
            {"request": {"method": "GET", "url": "Patient/bg-1/_history/1"}},
        ],
        kind="batch",
    )
    entries = send(client, bundle).get_json()["entry"]
    assert [e["resource"]["id"] for e in entries] == ["bg-1", "bg-1"]
    assert all(e["response"]["status"].startswith("200") for e in entries)


# -- concurrent writers through a real server -----------------------------------------------
THREADS = 4
PER_THREAD = 10


def _run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapped(n):
        try:
            target(n)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return errors


@pytest.mark.slow
def test_concurrent_transactions_and_if_match_updates(live_server, live_headers):
    base = live_server
    auth = {**JSON, **live_headers}  # a backend-services token
    shared = requests.put(
        f"{base}/Patient/shared-1",
        json={**patient("SHARED"), "id": "shared-1"},
        headers=auth,
        timeout=60,
    )
    assert shared.status_code == 201
    ok_tx: list[str] = []
    failed_tx: list[str] = []
    updates: list[int] = []
    lock = threading.Lock()

    def transactions(n: int) -> None:
        http = requests.Session()
        for i in range(PER_THREAD):
            mrn = f"T{n}-{i}"
            p_urn = urn()
            entries = [post_entry(patient(mrn), p_urn), post_entry(observation(p_urn, i), urn())]
            doomed = i % 3 == 2
            if doomed:  # fails inside the DB transaction, after both POSTs ran
                entries.append(
                    {
                        "resource": {**patient("SHARED"), "id": "shared-1"},
                        "request": {
                            "method": "PUT",
                            "url": "Patient/shared-1",
                            "ifMatch": 'W/"999"',
                        },
                    }
                )
            r = http.post(base, json=tx(entries), headers=auth, timeout=120)
            with lock:
                if doomed:
                    assert r.status_code == 412, r.text
                    failed_tx.append(mrn)
                else:
                    assert r.status_code == 200, r.text
                    ok_tx.append(mrn)

    def updater(n: int) -> None:
        http = requests.Session()
        done = 0
        while done < PER_THREAD:
            current = http.get(f"{base}/Patient/shared-1", headers=auth, timeout=60)
            assert current.status_code == 200, current.text
            body = current.json()
            version = body["meta"]["versionId"]
            body["name"] = [{"family": f"W{n}-{done}"}]
            r = http.put(
                f"{base}/Patient/shared-1",
                json=body,
                headers={**auth, "If-Match": f'W/"{version}"'},
                timeout=60,
            )
            if r.status_code in (409, 412):
                continue
            assert r.status_code == 200, r.text
            assert r.json()["meta"]["versionId"] == str(int(version) + 1)
            with lock:
                updates.append(int(r.json()["meta"]["versionId"]))
            done += 1

    def both(n: int) -> None:
        (transactions if n % 2 == 0 else updater)(n)

    errors = _run_threads(both, 2 * THREADS)  # THREADS transaction and THREADS update threads
    assert not errors, errors[:3]
    assert len(ok_tx) + len(failed_tx) == THREADS * PER_THREAD

    # versions of the contended resource: consecutive, no gaps, no duplicates
    assert sorted(updates) == list(range(2, 2 + len(updates)))
    assert len(updates) == THREADS * PER_THREAD
    hist = requests.get(
        f"{base}/Patient/shared-1/_history", params={"_count": 1000}, headers=auth, timeout=60
    ).json()
    versions = [int(e["resource"]["meta"]["versionId"]) for e in hist["entry"]]
    assert versions == list(range(len(updates) + 1, 0, -1))

    # all-or-nothing: every committed transaction stored both, no failed one stored anything
    patients = requests.get(
        f"{base}/Patient/_history", params={"_count": 1000}, headers=auth, timeout=60
    ).json()
    created = [
        e["resource"]["identifier"][0]["value"]
        for e in patients["entry"]
        if e["request"]["method"] == "POST"
    ]
    assert sorted(created) == sorted(ok_tx)
    assert not set(created) & set(failed_tx)
    obs = requests.get(
        f"{base}/Observation/_history", params={"_count": 1000}, headers=auth, timeout=60
    ).json()
    assert obs["total"] == len(ok_tx)
    subjects = {e["resource"]["subject"]["reference"] for e in obs["entry"]}
    assert len(subjects) == len(ok_tx)
    for ref in list(subjects)[:10]:
        assert requests.get(f"{base}/{ref}", headers=auth, timeout=60).status_code == 200
