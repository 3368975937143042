"""CRUD interactions over HTTP (FHIR R4 http.html#create/read/vread/update/delete).

Runs against SQLite and PostgreSQL through the parametrised ``client`` fixture.
"""

from __future__ import annotations

import re

import pytest

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def patient(family: str = "Smith", **extra) -> dict:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Ann"]}], **extra}


def create(client, resource: dict, headers: dict | None = None):
    response = client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers={**JSON, **(headers or {})}
    )
    return response


def issue_codes(response) -> list[str]:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return [issue["code"] for issue in body["issue"]]


def history_total(client, path: str) -> int:
    response = client.get(f"{path}/_history")
    assert response.status_code == 200
    return response.get_json()["total"]


# -- create -----------------------------------------------------------------------------
def test_create_returns_201_location_etag_and_meta(client):
    response = create(client, patient(id="client-chosen"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["resourceType"] == "Patient"
    assert body["id"] != "client-chosen"  # POST ignores a client-supplied id
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", body["id"])
    assert body["meta"]["versionId"] == "1"
    assert INSTANT.match(body["meta"]["lastUpdated"])
    assert body["name"] == [{"family": "Smith", "given": ["Ann"]}]
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert response.headers["Location"].startswith("http")
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.mimetype == "application/fhir+json"
    # the client id was really ignored: nothing is stored under it
    assert client.get("/fhir/Patient/client-chosen").status_code == 404


def test_read_and_vread(client):
    created = create(client, patient("Read")).get_json()
    pid = created["id"]
    read = client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200
    assert read.get_json() == created
    assert read.headers["ETag"] == 'W/"1"'
    vread = client.get(f"/fhir/Patient/{pid}/_history/1")
    assert vread.status_code == 200
    assert vread.get_json() == created
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 404
    assert client.get(f"/fhir/Patient/{pid}/_history/x").status_code == 400


def test_update_creates_version_two_and_keeps_version_one(client):
    created = create(client, patient("Before")).get_json()
    pid = created["id"]
    changed = {**created, "name": [{"family": "After"}]}
    response = client.put(f"/fhir/Patient/{pid}", json=changed, headers=JSON)
    assert response.status_code == 200
    body = response.get_json()
    assert body["meta"]["versionId"] == "2"
    assert body["name"] == [{"family": "After"}]
    assert response.headers["ETag"] == 'W/"2"'
    assert response.headers["Location"].endswith(f"/Patient/{pid}/_history/2")
    assert client.get(f"/fhir/Patient/{pid}").get_json()["name"] == [{"family": "After"}]
    old = client.get(f"/fhir/Patient/{pid}/_history/1").get_json()
    assert old["name"] == [{"family": "Before", "given": ["Ann"]}]
    assert old["meta"]["versionId"] == "1"


def test_update_as_create_with_client_id(client):
    response = client.put(
        "/fhir/Patient/my-own-id-1", json=patient("Own", id="my-own-id-1"), headers=JSON
    )
    assert response.status_code == 201
    assert response.get_json()["id"] == "my-own-id-1"
    assert response.get_json()["meta"]["versionId"] == "1"
    assert response.headers["Location"].endswith("/Patient/my-own-id-1/_history/1")
    assert client.get("/fhir/Patient/my-own-id-1").status_code == 200


def test_update_id_mismatch_or_missing_is_400(client):
    mismatch = client.put("/fhir/Patient/p-one", json=patient(id="p-two"), headers=JSON)
    assert mismatch.status_code == 400
    assert mismatch.get_json()["issue"][0]["expression"] == ["Patient.id"]
    missing = client.put("/fhir/Patient/p-one", json=patient(), headers=JSON)
    assert missing.status_code == 400
    assert client.get("/fhir/Patient/p-one").status_code == 404


def test_if_match_stale_412_current_200(client):
    created = create(client, patient("Match")).get_json()
    pid = created["id"]
    v2 = {**created, "gender": "female"}
    ok = client.put(f"/fhir/Patient/{pid}", json=v2, headers={**JSON, "If-Match": 'W/"1"'})
    assert ok.status_code == 200
    assert ok.get_json()["meta"]["versionId"] == "2"
    v3 = {**created, "gender": "male"}
    stale = client.put(f"/fhir/Patient/{pid}", json=v3, headers={**JSON, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert issue_codes(stale) == ["conflict"]
    assert client.get(f"/fhir/Patient/{pid}").get_json()["gender"] == "female"
    current = client.put(f"/fhir/Patient/{pid}", json=v3, headers={**JSON, "If-Match": 'W/"2"'})
    assert current.status_code == 200
    assert current.get_json()["meta"]["versionId"] == "3"
    assert current.get_json()["gender"] == "male"


def test_if_match_on_absent_resource_is_412(client):
    response = client.put(
        "/fhir/Patient/never-there",
        json=patient(id="never-there"),
        headers={**JSON, "If-Match": 'W/"1"'},
    )
    assert response.status_code == 412
    assert client.get("/fhir/Patient/never-there").status_code == 404


@pytest.mark.parametrize("etag", ["garbage", 'W/"abc"', 'W/""'])
def test_malformed_if_match_is_400(client, etag):
    created = create(client, patient()).get_json()
    response = client.put(
        f"/fhir/Patient/{created['id']}", json=created, headers={**JSON, "If-Match": etag}
    )
    assert response.status_code == 400
    assert issue_codes(response) == ["invalid"]
    assert "If-Match" in response.get_json()["issue"][0]["diagnostics"]


def test_identical_put_is_a_no_op(client):
    created = create(client, patient("Same")).get_json()
    pid = created["id"]
    again = client.put(f"/fhir/Patient/{pid}", json=created, headers=JSON)
    assert again.status_code == 200
    assert again.get_json()["meta"]["versionId"] == "1"
    assert again.headers["ETag"] == 'W/"1"'
    # the same content without meta is also unchanged
    bare = {k: v for k, v in created.items() if k != "meta"}
    assert (
        client.put(f"/fhir/Patient/{pid}", json=bare, headers=JSON).get_json()["meta"]["versionId"]
        == "1"
    )
    assert history_total(client, f"/fhir/Patient/{pid}") == 1


# -- conditional create / update ------------------------------------------------------------
def _with_identifier(value: str, family: str = "Cond") -> dict:
    return patient(family, identifier=[{"system": "urn:test:mrn", "value": value}])


def test_conditional_create_no_match_creates(client):
    response = create(
        client, _with_identifier("A-1"), headers={"If-None-Exist": "identifier=urn:test:mrn|A-1"}
    )
    assert response.status_code == 201
    assert response.get_json()["meta"]["versionId"] == "1"


def test_conditional_create_one_match_returns_existing(client):
    first = create(client, _with_identifier("B-1")).get_json()
    response = create(
        client,
        _with_identifier("B-1", family="Other"),
        headers={"If-None-Exist": "identifier=urn:test:mrn|B-1"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == first["id"]
    assert body["name"][0]["family"] == "Cond"  # the existing resource, not the new body
    assert body["meta"]["versionId"] == "1"
    assert history_total(client, "/fhir/Patient") == 1


def test_conditional_create_two_matches_412(client):
    create(client, _with_identifier("C-1"))
    create(client, _with_identifier("C-1"))
    response = create(
        client, _with_identifier("C-1"), headers={"If-None-Exist": "identifier=urn:test:mrn|C-1"}
    )
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert history_total(client, "/fhir/Patient") == 2


def test_conditional_update_no_match_creates(client):
    response = client.put(
        "/fhir/Patient?identifier=urn:test:mrn|D-1", json=_with_identifier("D-1"), headers=JSON
    )
    assert response.status_code == 201
    pid = response.get_json()["id"]
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_conditional_update_one_match_updates(client):
    first = create(client, _with_identifier("E-1")).get_json()
    response = client.put(
        "/fhir/Patient?identifier=urn:test:mrn|E-1",
        json=_with_identifier("E-1", family="Updated"),
        headers=JSON,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == first["id"]
    assert body["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Patient/{first['id']}").get_json()["name"][0]["family"] == "Updated"


def test_conditional_update_two_matches_412(client):
    create(client, _with_identifier("F-1"))
    create(client, _with_identifier("F-1"))
    response = client.put(
        "/fhir/Patient?identifier=urn:test:mrn|F-1",
        json=_with_identifier("F-1", family="X"),
        headers=JSON,
    )
    assert response.status_code == 412
    assert history_total(client, "/fhir/Patient") == 2


def test_conditional_delete(client):
    first = create(client, _with_identifier("G-1")).get_json()
    response = client.delete("/fhir/Patient?identifier=urn:test:mrn|G-1")
    assert response.status_code == 204
    assert client.get(f"/fhir/Patient/{first['id']}").status_code == 410


# -- delete -----------------------------------------------------------------------------
def test_delete_then_read_410_and_old_vread_200(client):
    created = create(client, patient("Gone")).get_json()
    pid = created["id"]
    response = client.delete(f"/fhir/Patient/{pid}")
    assert response.status_code == 204
    assert response.get_data() == b""
    gone = client.get(f"/fhir/Patient/{pid}")
    assert gone.status_code == 410
    assert issue_codes(gone) == ["deleted"]
    old = client.get(f"/fhir/Patient/{pid}/_history/1")
    assert old.status_code == 200
    assert old.get_json()["name"][0]["family"] == "Gone"
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 410
    # deleting again is idempotent and adds no version
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert history_total(client, f"/fhir/Patient/{pid}") == 2


def test_update_after_delete_recreates(client):
    created = create(client, patient("Phoenix")).get_json()
    pid = created["id"]
    client.delete(f"/fhir/Patient/{pid}")
    again = client.put(f"/fhir/Patient/{pid}", json=created, headers=JSON)
    assert again.status_code == 201
    assert again.get_json()["meta"]["versionId"] == "3"
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_delete_unknown_is_204(client):
    response = client.delete("/fhir/Patient/does-not-exist")
    assert response.status_code == 204
    assert client.get("/fhir/Patient/does-not-exist").status_code == 404


# -- Prefer --------------------------------------------------------------------------------
def test_prefer_return_minimal(client):
    response = create(client, patient(), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.get_data() == b""
    assert response.headers["ETag"] == 'W/"1"'
    location = response.headers["Location"]
    pid = location.split("/Patient/")[1].split("/")[0]
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_prefer_return_operation_outcome(client):
    response = create(client, patient(), headers={"Prefer": "return=OperationOutcome"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "information"
    assert "/Patient/" in response.headers["Location"]


def test_if_none_match_on_read_gives_304(client):
    created = create(client, patient()).get_json()
    response = client.get(f"/fhir/Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response.get_data() == b""


def test_create_and_update_index_each_resource_once_before_the_write_lock(client, monkeypatch):
    # The content-only work (index rows, leaf) is prepared before the transaction
    # and reused for the very dict written: a second computation would be the
    # in-lock fallback.
    from fhir_server.storage import writer

    calls = []
    real = writer.index_rows
    monkeypatch.setattr(writer, "index_rows", lambda *a: calls.append(a[0]) or real(*a))
    patient = {"resourceType": "Patient", "name": [{"family": "Once"}]}
    created = client.post("/fhir/Patient", json=patient, headers=JSON)
    assert created.status_code == 201
    patient_id = created.get_json()["id"]
    changed = {**patient, "id": patient_id, "name": [{"family": "Twice"}]}
    updated = client.put(f"/fhir/Patient/{patient_id}", json=changed, headers=JSON)
    assert updated.status_code == 200
    patients = [r for r in calls if r.get("resourceType") == "Patient"]
    assert len(patients) == 2
