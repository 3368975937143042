"""Error responses (FHIR R4 http.html#2.21.0.6): status, OperationOutcome, no internals."""

from __future__ import annotations

import pytest

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def outcome(response, status: int, code: str | None = None) -> dict:
    """Assert an OperationOutcome error response and return its first issue."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert 'File "' not in text
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    issue = body["issue"][0]
    assert issue["severity"] in {"error", "fatal"}
    if code is not None:
        assert issue["code"] == code, body
    return issue


def test_unknown_type_404(client):
    outcome(client.get("/fhir/NoSuchType"), 404, "not-found")
    outcome(client.get("/fhir/NoSuchType/1"), 404, "not-found")
    outcome(client.post("/fhir/NoSuchType", json={"resourceType": "NoSuchType"}, headers=JSON), 404)


def test_unknown_id_404(client):
    issue = outcome(client.get("/fhir/Patient/unknown-id"), 404, "not-found")
    assert "unknown-id" in issue["diagnostics"]


@pytest.mark.parametrize("bad_id", ["bad$id", "a" * 65, "with_underscore"])
def test_bad_id_400(client, bad_id):
    outcome(client.get(f"/fhir/Patient/{bad_id}"), 400, "invalid")


def test_invalid_resource_points_at_element(client):
    missing_status = {"resourceType": "Observation", "code": {"text": "x"}}
    issue = outcome(client.post("/fhir/Observation", json=missing_status, headers=JSON), 400)
    assert issue["code"] == "structure"
    assert issue["expression"] == ["Observation.status"]
    wrong_type = {"resourceType": "Observation", "status": 7, "code": {"text": "x"}}
    issue = outcome(client.post("/fhir/Observation", json=wrong_type, headers=JSON), 400)
    assert issue["expression"] == ["Observation.status"]
    bad_date = {"resourceType": "Patient", "birthDate": "02/03/1968"}
    issue = outcome(client.post("/fhir/Patient", json=bad_date, headers=JSON), 400, "structure")
    assert issue["expression"] == ["Patient.birthDate"]
    unknown = {"resourceType": "Patient", "favouriteColour": "blue"}
    issue = outcome(client.post("/fhir/Patient", json=unknown, headers=JSON), 400, "structure")
    assert issue["expression"] == ["Patient.favouriteColour"]
    nested = {"resourceType": "Patient", "name": [{"family": "A"}, {"family": 5}]}
    issue = outcome(client.put("/fhir/Patient/x1", json={**nested, "id": "x1"}, headers=JSON), 400)
    assert issue["expression"] == ["Patient.name[1].family"]
    assert client.get("/fhir/_history").get_json()["total"] == 0


def test_required_binding_is_enforced(client):
    bogus = {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}}
    issue = outcome(client.post("/fhir/Observation", json=bogus, headers=JSON), 400)
    assert issue["expression"] == ["Observation.status"]


def test_resource_type_mismatch_400(client):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    issue = outcome(client.post("/fhir/Patient", json=obs, headers=JSON), 400)
    assert issue["expression"] == ["resourceType"]
    issue = outcome(client.put("/fhir/Patient/p1", json={**obs, "id": "p1"}, headers=JSON), 400)
    assert issue["expression"] == ["resourceType"]
    outcome(client.post("/fhir/Patient", json={"name": []}, headers=JSON), 400)


def test_wrong_content_type_415(client):
    response = client.post(
        "/fhir/Patient", data='{"resourceType": "Patient"}', headers={"Content-Type": "text/plain"}
    )
    outcome(response, 415, "not-supported")


def test_xml_body_415(client):
    xml = '<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>'
    response = client.post(
        "/fhir/Patient", data=xml, headers={"Content-Type": "application/fhir+xml"}
    )
    outcome(response, 415, "not-supported")


def test_json_content_type_variants_accepted(client):
    for mime in [
        "application/fhir+json",
        "application/json",
        "application/fhir+json; charset=utf-8",
    ]:
        response = client.post(
            "/fhir/Patient", data='{"resourceType": "Patient"}', headers={"Content-Type": mime}
        )
        assert response.status_code == 201, mime


def test_xml_only_accept_406(client):
    outcome(client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    outcome(client.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"}), 406)
    outcome(client.get("/fhir/Patient", query_string={"_format": "xml"}), 406)
    outcome(client.get("/fhir/metadata", query_string={"_format": "application/fhir+xml"}), 406)
    # JSON in the list (even with lower q) is acceptable
    mixed = client.get(
        "/fhir/metadata", headers={"Accept": "application/fhir+xml, application/fhir+json;q=0.5"}
    )
    assert mixed.status_code == 200
    assert client.get("/fhir/metadata", query_string={"_format": "json"}).status_code == 200


def test_empty_body_400(client):
    outcome(client.post("/fhir/Patient", data=b"", headers=JSON), 400, "invalid")
    outcome(client.put("/fhir/Patient/p1", data=b"  ", headers=JSON), 400, "invalid")


def test_malformed_json_400(client):
    outcome(
        client.post("/fhir/Patient", data=b'{"resourceType": "Pat', headers=JSON), 400, "invalid"
    )
    outcome(client.post("/fhir/Patient", data=b"\xff\xfe{}", headers=JSON), 400, "invalid")
    outcome(client.post("/fhir/Patient", data=b"[1, 2]", headers=JSON), 400, "invalid")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_400_and_nothing_stored(client, constant):
    """Python's parser reads NaN / Infinity; JSON (and FHIR) has no such numbers, and
    written out again they would silently become null."""
    body = (
        '{"resourceType": "Observation", "id": "nan1", "status": "final", "code": {"text": "x"}, '
        f'"valueQuantity": {{"value": {constant}}}}}'
    )
    issue = outcome(client.put("/fhir/Observation/nan1", data=body, headers=JSON), 400, "invalid")
    assert constant.lstrip("-") in issue["diagnostics"]
    assert client.get("/fhir/Observation/nan1").status_code == 404


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_400(client, opener, closer):
    depth = 10_000
    body = opener * depth + "1" + closer * depth
    issue = outcome(client.post("/fhir/Patient", data=body, headers=JSON), 400, "invalid")
    assert "nested" in issue["diagnostics"]
    moderately = '{"resourceType": "Patient", "x": ' + "[" * 100 + "]" * 100 + "}"
    issue = outcome(client.post("/fhir/Patient", data=moderately, headers=JSON), 400)
    assert "nested" in issue["diagnostics"]


def test_oversized_body_413(tmp_path, database_url, make_app):
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(data_dir=tmp_path / "small", database_url=database_url, max_body_bytes=2048)
    )
    try:
        client = make_app(node).test_client()
        big = {"resourceType": "Patient", "name": [{"family": "x" * 4000}]}
        outcome(client.post("/fhir/Patient", json=big, headers=JSON), 413, "too-costly")
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"x": "y" * 4000}]}
        outcome(client.post("/fhir", json=bundle, headers=JSON), 413, "too-costly")
        small = {"resourceType": "Patient", "name": [{"family": "x"}]}
        assert client.post("/fhir/Patient", json=small, headers=JSON).status_code == 201
        assert client.get("/fhir/_history").get_json()["total"] == 1
    finally:
        node.close()


def test_unsupported_method_405(client):
    # PATCH is an instance interaction; a conditional (type-level) PATCH is not served.
    response = client.patch("/fhir/Patient", json={}, headers=JSON)
    outcome(response, 405, "not-supported")
    assert "PUT" in response.headers["Allow"]
    assert "PATCH" not in response.headers["Allow"]
    outcome(client.patch("/fhir/_history", json={}, headers=JSON), 405)
    outcome(client.open("/fhir/Patient/p1", method="PROPFIND"), 405)


def test_unknown_route_404(client):
    outcome(client.get("/fhir/Patient/p1/_history/1/extra"), 404)
    outcome(client.get("/not-fhir"), 404)


@pytest.mark.parametrize("kind", ["collection", "document", "searchset", None])
def test_unsupported_bundle_type_400(client, kind):
    bundle = {"resourceType": "Bundle", "entry": []}
    if kind:
        bundle["type"] = kind
    issue = outcome(client.post("/fhir", json=bundle, headers=JSON), 400, "invalid")
    assert issue["expression"] == ["Bundle.type"]


def test_non_bundle_posted_to_base_400(client):
    issue = outcome(client.post("/fhir", json={"resourceType": "Patient"}, headers=JSON), 400)
    assert issue["expression"] == ["resourceType"]


def test_internal_error_hides_details(client, node):
    """An unexpected exception becomes a bare 500 OperationOutcome (no exception text)."""
    from sqlalchemy import text

    with node.engine.begin() as conn:
        conn.execute(text("DROP TABLE resource_versions"))
    response = client.get("/fhir/Patient/p1")
    issue = outcome(response, 500, "exception")
    assert issue["diagnostics"] == "Internal server error."
    assert "resource_versions" not in response.get_data(as_text=True)
