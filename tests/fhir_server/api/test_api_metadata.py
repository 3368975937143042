"""GET /fhir/metadata: the CapabilityStatement (R4 capabilitystatement.html)."""

from __future__ import annotations

import re


def test_capability_statement(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    cap = response.get_json()
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"] == "4.0.1"
    assert cap["status"] == "active"
    assert cap["kind"] == "instance"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(T.*)?", cap["date"])
    assert "application/fhir+json" in cap["format"] or "json" in cap["format"]
    assert cap["implementation"]["url"].endswith("/fhir")
    rest = cap["rest"][0]
    assert rest["mode"] == "server"
    assert {"transaction", "batch", "history-system"} <= {i["code"] for i in rest["interaction"]}
    by_type = {r["type"]: r for r in rest["resource"]}
    patient = by_type["Patient"]
    interactions = {i["code"] for i in patient["interaction"]}
    assert {
        "read",
        "vread",
        "update",
        "delete",
        "create",
        "search-type",
        "history-instance",
    } <= interactions
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["family"] == "string"
    assert params["identifier"] == "token"
    assert params["birthdate"] == "date"
    assert params["_id"] == "token"
    assert {"Observation", "Condition", "Organization", "Encounter"} <= set(by_type)
    operations = {op["name"] for op in rest.get("operation", [])}
    assert "everything" in operations


def test_capability_statement_validates_as_r4(client):
    from validators.r4 import validate_resource

    validate_resource(client.get("/fhir/metadata").get_json())


def test_listed_types_match_supported_types(client):
    from fhir_server.resource_types import supported_types

    listed = {r["type"] for r in client.get("/fhir/metadata").get_json()["rest"][0]["resource"]}
    assert listed == set(supported_types())
    assert len(listed) > 100


def test_every_listed_type_is_searchable(client):
    listed = [r["type"] for r in client.get("/fhir/metadata").get_json()["rest"][0]["resource"]]
    failures = {}
    for res_type in listed:
        response = client.get(f"/fhir/{res_type}")
        body = response.get_json()
        # An empty node holds one AuditEvent: the issue of the client's own token.
        expected = 1 if res_type == "AuditEvent" else 0
        if (
            response.status_code != 200
            or body.get("type") != "searchset"
            or body.get("total") != expected
        ):
            failures[res_type] = (response.status_code, body)
    assert not failures, list(failures.items())[:3]
