"""Hostile and invalid input through the REST API (issue #14): each gets a 4xx
OperationOutcome naming the rule and the element, and nothing is stored -- alone or
inside a transaction Bundle -- and nothing already stored is lost.

The served (gunicorn) half -- deep JSON killing a worker, over-long request lines
and headers -- is tests/fhir_server/test_serve_hostile.py."""

from __future__ import annotations

import sys

import pytest

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
DEEP = 100_000

INVALID_PATIENTS = {
    "nested-contained": (
        {
            "resourceType": "Patient",
            "contained": [
                {"resourceType": "Patient", "id": "c1", "contained": [{"resourceType": "Patient"}]}
            ],
        },
        "Patient.contained[0].contained",
        "dom-2",
    ),
    "nul": (
        {"resourceType": "Patient", "name": [{"family": "a\u0000b"}]},
        "Patient.name[0].family",
        "U+0000",
    ),
    "u0001": (
        {"resourceType": "Patient", "name": [{"family": "a\u0001b"}]},
        "Patient.name[0].family",
        "U+0001",
    ),
    "empty-name": ({"resourceType": "Patient", "name": [{}]}, "Patient.name[0]", "ele-1"),
    "null": ({"resourceType": "Patient", "active": None}, "Patient.active", "null"),
}


def outcome(response, status: int) -> list[dict]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert all(i["severity"] == "error" for i in body["issue"])
    return body["issue"]


def stored_versions(client) -> int:
    return client.get("/fhir/_history").get_json()["total"]


@pytest.mark.parametrize("case", sorted(INVALID_PATIENTS))
def test_invalid_resource_is_refused_and_not_stored(client, case):
    resource, expression, rule = INVALID_PATIENTS[case]
    issues = outcome(client.post("/fhir/Patient", json=resource, headers=JSON), 400)
    assert issues[0]["expression"] == [expression]
    assert rule in issues[0]["diagnostics"]
    issues = outcome(
        client.put("/fhir/Patient/p1", json={**resource, "id": "p1"}, headers=JSON), 400
    )
    assert issues[0]["expression"] == [expression]
    assert stored_versions(client) == 0


@pytest.mark.parametrize("case", sorted(INVALID_PATIENTS))
def test_an_update_with_invalid_content_keeps_the_stored_version(client, case):
    resource, _expression, _rule = INVALID_PATIENTS[case]
    good = {"resourceType": "Patient", "id": "keep", "name": [{"family": "Kept"}]}
    assert client.put("/fhir/Patient/keep", json=good, headers=JSON).status_code == 201
    bad = {**resource, "id": "keep"}
    outcome(client.put("/fhir/Patient/keep", json=bad, headers=JSON), 400)
    current = client.get("/fhir/Patient/keep").get_json()
    assert current["name"] == [{"family": "Kept"}]
    assert current["meta"]["versionId"] == "1"


def _transaction(*resources, full_urls=None) -> dict:
    full_urls = full_urls or [
        f"urn:uuid:00000000-0000-4000-8000-{i:012d}" for i in range(len(resources))
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": url, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for url, r in zip(full_urls, resources, strict=True)
        ],
    }


@pytest.mark.parametrize("case", sorted(INVALID_PATIENTS))
def test_invalid_entry_fails_the_whole_transaction(client, case):
    resource, expression, rule = INVALID_PATIENTS[case]
    good = {"resourceType": "Patient", "name": [{"family": "Good"}]}
    bundle = _transaction(good, resource)
    issues = outcome(client.post("/fhir", json=bundle, headers=JSON), 400)
    assert issues[0]["expression"] == [expression]
    assert "Bundle.entry[1]" in issues[0]["diagnostics"]
    assert rule in issues[0]["diagnostics"]
    assert stored_versions(client) == 0


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_duplicate_full_url_is_refused_bdl_7(client, kind):
    url = "urn:uuid:11111111-1111-4111-8111-111111111111"
    patient = {"resourceType": "Patient", "name": [{"family": "Twin"}]}
    bundle = _transaction(
        patient,
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        patient,
        full_urls=[url, "urn:uuid:22222222-2222-4222-8222-222222222222", url],
    )
    bundle["type"] = kind
    issues = outcome(client.post("/fhir", json=bundle, headers=JSON), 400)
    assert issues[0]["expression"] == ["Bundle.entry[2].fullUrl"]
    assert "bdl-7" in issues[0]["diagnostics"]
    assert stored_versions(client) == 0


def test_distinct_full_urls_and_other_versions_pass_bdl_7(client):
    url = "http://localhost/fhir/Patient/v1"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "fullUrl": url,
                "resource": {"resourceType": "Patient", "id": "v1", "meta": {"versionId": str(n)}},
                "request": {"method": "PUT", "url": "Patient/v1"},
            }
            for n in (1, 2)
        ],
    }
    response = client.post("/fhir", json=bundle, headers=JSON)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/fhir/$verify", "/fhir", "/fhir/Patient", "/fhir/Patient/p1"])
def test_deep_json_is_400(client, path):
    body = b"[" * DEEP + b"]" * DEEP
    method = client.put if path.endswith("/p1") else client.post
    issues = outcome(method(path, data=body, headers=JSON), 400)
    assert "nested" in issues[0]["diagnostics"]
    assert stored_versions(client) == 0


def test_the_app_restores_a_sane_recursion_limit(app):
    import web3  # noqa: F401 - py_ecc raised the limit to 100,000 when it was imported

    from fhir_server.app import RECURSION_LIMIT, create_app

    sys.setrecursionlimit(100_000)  # as py_ecc sets it on import
    create_app({"NODE": app.extensions["phrx.node"], "TESTING": True})
    assert sys.getrecursionlimit() == RECURSION_LIMIT <= 1000


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@pytest.mark.parametrize("full_url", [{}, [1], 5, ""])
def test_a_full_url_that_is_no_uri_is_400(client, kind, full_url):
    """Hashed to resolve references, a list or object fullUrl was a 500."""
    patient = {"resourceType": "Patient", "name": [{"family": "X"}]}
    bundle = _transaction(patient, full_urls=[full_url])
    bundle["type"] = kind
    issues = outcome(client.post("/fhir", json=bundle, headers=JSON), 400)
    assert issues[0]["expression"] == ["Bundle.entry[0].fullUrl"]
    assert stored_versions(client) == 0


def test_deep_mhb_json_beyond_its_pre_check_is_400(client):
    """mhb_import's parser bounds nesting in the first 4 MB only; past them json.loads
    ran with web3's 100,000 recursion limit. The app's restored limit makes that a
    RecursionError, which the parser answers with 400."""
    patient = {"resourceType": "Patient", "id": "m1", "name": [{"family": "M"}]}
    assert client.put("/fhir/Patient/m1", json=patient, headers=JSON).status_code == 201
    pad = b'"' + b"x" * (4 * 1024 * 1024 + 16) + b'"'
    body = b'{"myhealthbank": {"pad": ' + pad + b', "bdata": ' + b"[" * DEEP + b"]" * DEEP + b"}}"
    response = client.post(
        "/fhir/Patient/m1/$import-mhb", data=body, content_type="application/octet-stream"
    )
    issues = outcome(response, 400)
    assert "deep" in issues[0]["diagnostics"] or "nest" in issues[0]["diagnostics"]
    assert stored_versions(client) == 1
