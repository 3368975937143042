"""GET /fhir/metadata: the CapabilityStatement (R4 capabilitystatement.html)."""

from __future__ import annotations

import re

from fhir_server.operations import registry
from fhir_server.operations.definition import CANONICAL_BASE


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
    system_level = {i["code"] for i in rest["interaction"]}
    assert {"transaction", "batch", "history-system", "search-system"} <= system_level
    assert rest["compartment"] == ["http://hl7.org/fhir/CompartmentDefinition/patient"]
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
    from fhir_server.validation import validate_resource

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
        # An empty node holds one AuditEvent: the issue of the client's own token; the
        # OperationDefinition search answers the node's own operations.
        expected = {"AuditEvent": 1, "OperationDefinition": len(registry.definitions())}.get(
            res_type, 0
        )
        if (
            response.status_code != 200
            or body.get("type") != "searchset"
            or body.get("total") != expected
        ):
            failures[res_type] = (response.status_code, body)
    assert not failures, list(failures.items())[:3]


# -- OperationDefinitions: one canonical base, each served ------------------------------
def _served(client, definition_url: str) -> dict:
    assert definition_url.startswith(f"{CANONICAL_BASE}/OperationDefinition/"), definition_url
    op_id = definition_url.rsplit("/", 1)[1]
    response = client.get(f"/fhir/OperationDefinition/{op_id}")
    assert response.status_code == 200, (definition_url, response.get_json())
    assert response.mimetype == "application/fhir+json"
    return response.get_json()


def test_every_listed_operation_resolves_to_a_served_definition(client):
    operations = client.get("/fhir/metadata").get_json()["rest"][0]["operation"]
    assert {op["name"] for op in operations} == {
        "everything",
        "summary",
        "share",
        "erase",
        "import-mhb",
        "anchor",
        "verify",
        "provenance",
        "receive-share",
    }
    for op in operations:
        served = _served(client, op["definition"])
        assert served["url"] == op["definition"]
        assert served["code"] == op["name"]
        assert served["resourceType"] == "OperationDefinition"
        assert served["status"] == "active" and served["kind"] == "operation"


def test_served_definitions_are_valid_r4(client):
    from fhir.resources.R4B.operationdefinition import OperationDefinition

    from fhir_server.validation import validate_resource

    bundle = client.get("/fhir/OperationDefinition").get_json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(registry.definitions())
    validate_resource(bundle)
    for entry in bundle["entry"]:
        definition = entry["resource"]
        validate_resource(definition)
        OperationDefinition.model_validate(definition)
        assert entry["fullUrl"].endswith(f"/OperationDefinition/{definition['id']}")
        for parameter in definition["parameter"]:
            assert parameter["use"] in ("in", "out") and parameter["min"] >= 0
            assert parameter["max"] in ("1", "*")
            assert ("type" in parameter) != ("part" in parameter), parameter


def test_definitions_name_what_they_derive_from(client):
    everything = _served(client, f"{CANONICAL_BASE}/OperationDefinition/everything")
    assert everything["base"] == "http://hl7.org/fhir/OperationDefinition/Patient-everything"
    assert everything["resource"] == ["Patient"] and everything["instance"] is True
    summary = _served(client, f"{CANONICAL_BASE}/OperationDefinition/summary")
    assert summary["base"] == "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"
    anchor = _served(client, f"{CANONICAL_BASE}/OperationDefinition/anchor")
    assert anchor["system"] is True and anchor["affectsState"] is True


def test_definition_search_parameters(client):
    def ids(query: str) -> list[str]:
        bundle = client.get(f"/fhir/OperationDefinition?{query}").get_json()
        return sorted(e["resource"]["id"] for e in bundle.get("entry", []))

    assert ids("code=verify") == ["verify"]
    assert ids(f"url={CANONICAL_BASE}/OperationDefinition/erase") == ["erase"]
    assert ids("_id=share,summary") == ["share", "summary"]
    assert ids("name=phrxpatient") == ["erase", "everything", "import-mhb", "share", "summary"]
    assert ids("code=nothing") == []
    assert len(ids("unknown=1")) == len(registry.definitions())  # lenient: ignored
    strict = client.get(
        "/fhir/OperationDefinition?unknown=1", headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


def test_node_definitions_are_read_only_and_other_ids_stay_stored_resources(client):
    refused = client.put(
        "/fhir/OperationDefinition/verify",
        json={"resourceType": "OperationDefinition", "id": "verify"},
    )
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD"
    assert client.delete("/fhir/OperationDefinition/verify").status_code == 405
    assert _served(client, f"{CANONICAL_BASE}/OperationDefinition/verify")["name"] == "PhrxVerify"
    # any other id is an ordinary stored OperationDefinition (the R4 examples among them)
    assert client.get("/fhir/OperationDefinition/Patient-everything").status_code == 404


def test_definitions_are_public_like_metadata(app):
    anonymous = app.test_client()
    anonymous.environ_base.pop("HTTP_AUTHORIZATION", None)
    assert anonymous.get("/fhir/metadata").status_code == 200
    assert anonymous.get("/fhir/OperationDefinition/verify").status_code == 200
    assert anonymous.get("/fhir/OperationDefinition").status_code == 200
    # only reads of the node's own definitions: anything else still needs a token
    assert anonymous.get("/fhir/OperationDefinition/other").status_code == 401
    assert anonymous.post("/fhir/OperationDefinition", json={}).status_code == 401


def test_public_reads_are_exactly_the_node_definitions():
    from fhir_server.api.operations.definitions import is_public_read

    assert is_public_read("GET", "/fhir/OperationDefinition")
    assert is_public_read("HEAD", "/fhir/OperationDefinition/import-mhb")
    assert not is_public_read("POST", "/fhir/OperationDefinition")
    assert not is_public_read("PUT", "/fhir/OperationDefinition/verify")
    assert not is_public_read("GET", "/fhir/OperationDefinition/other")
    assert not is_public_read("GET", "/fhir/OperationDefinition/verify/_history")
