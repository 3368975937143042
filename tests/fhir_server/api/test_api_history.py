"""History interactions (FHIR R4 http.html#history): instance, type and system level."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def post(client, resource: dict) -> dict:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=JSON)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def put(client, resource: dict) -> dict:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=JSON)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def history(client, path: str, **params) -> dict:
    response = client.get(path, query_string=params)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "history"
    return body


def test_instance_history_newest_first_with_request_and_response(client):
    v1 = post(client, {"resourceType": "Patient", "gender": "male"})
    pid = v1["id"]
    put(client, {**v1, "gender": "female"})
    put(client, {**v1, "gender": "other"})
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    body = history(client, f"/fhir/Patient/{pid}/_history")
    assert body["total"] == 4
    entries = body["entry"]
    etags = [e["response"]["etag"] for e in entries]
    assert etags == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "PUT", "POST"]
    deletion = entries[0]
    assert "resource" not in deletion
    assert deletion["request"]["url"] == f"Patient/{pid}"
    assert deletion["response"]["status"].startswith("204")
    assert entries[1]["resource"]["gender"] == "other"
    assert entries[1]["resource"]["meta"]["versionId"] == "3"
    assert entries[1]["request"]["url"] == f"Patient/{pid}"
    assert entries[1]["response"]["status"].startswith("200")
    assert entries[3]["resource"]["gender"] == "male"
    assert entries[3]["request"]["url"] == "Patient"
    assert entries[3]["response"]["status"].startswith("201")
    assert all(e["fullUrl"].endswith(f"/fhir/Patient/{pid}") for e in entries)
    assert all("lastModified" in e["response"] for e in entries)
    modified = [e["response"]["lastModified"] for e in entries]
    assert modified == sorted(modified, reverse=True)


def test_type_history_only_that_type(client):
    p1 = post(client, {"resourceType": "Patient", "gender": "male"})
    post(client, {"resourceType": "Organization", "name": "Clinic"})
    p2 = post(client, {"resourceType": "Patient", "gender": "female"})
    body = history(client, "/fhir/Patient/_history")
    assert body["total"] == 2
    assert [e["resource"]["id"] for e in body["entry"]] == [p2["id"], p1["id"]]
    assert {e["resource"]["resourceType"] for e in body["entry"]} == {"Patient"}


def test_system_history_covers_all_types(client):
    post(client, {"resourceType": "Patient", "gender": "male"})
    org = post(client, {"resourceType": "Organization", "name": "Clinic"})
    client.delete(f"/fhir/Organization/{org['id']}")
    body = history(client, "/fhir/_history")
    assert body["total"] == 3
    methods = [
        (e["request"]["method"], e["fullUrl"].split("/fhir/")[1].split("/")[0])
        for e in body["entry"]
    ]
    assert methods == [("DELETE", "Organization"), ("POST", "Organization"), ("POST", "Patient")]


def test_history_paging_with_count_and_next_link(client):
    created = post(client, {"resourceType": "Patient", "gender": "male"})
    for gender in ["female", "other", "unknown", "male"]:
        created = put(client, {**created, "gender": gender})
    path = f"/fhir/Patient/{created['id']}/_history"
    seen = []
    page = history(client, path, _count=2)
    pages = 1
    while True:
        assert page["total"] == 5
        assert len(page["entry"]) <= 2
        seen += [e["resource"]["meta"]["versionId"] for e in page["entry"]]
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "self" in links
        if "next" not in links:
            break
        url = urlsplit(links["next"])
        assert url.path == path
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert params["_count"] == "2"
        page = history(client, url.path, **params)
        pages += 1
    assert pages == 3
    assert seen == ["5", "4", "3", "2", "1"]


def test_history_since(client):
    old = post(client, {"resourceType": "Patient", "gender": "male"})
    time.sleep(0.05)
    new = post(client, {"resourceType": "Patient", "gender": "female"})
    body = history(client, "/fhir/Patient/_history", _since=new["meta"]["lastUpdated"])
    assert [e["resource"]["id"] for e in body["entry"]] == [new["id"]]
    assert body["total"] == 1
    everything = history(client, "/fhir/Patient/_history", _since=old["meta"]["lastUpdated"])
    assert everything["total"] == 2
    assert history(client, "/fhir/_history", _since="2999-01-01T00:00:00Z")["total"] == 0


def test_history_bad_parameters_are_400(client):
    for params in ({"_since": "yesterday"}, {"_count": "-1"}, {"_count": "abc"}):
        response = client.get("/fhir/_history", query_string=params)
        assert response.status_code == 400, params
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_history_of_unknown_instance_is_404(client):
    response = client.get("/fhir/Patient/nobody/_history")
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"
