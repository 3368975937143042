"""What the node says about its API and its errors: the CapabilityStatement, every
OperationDefinition, OperationOutcomes of refused requests (HL7 validator, issue #15)."""

from __future__ import annotations

from fhir_server.operations import registry
from tests.conformance.served import conformant
from tests.smart_tokens import backend_token

JSON = {"Content-Type": "application/fhir+json"}


def test_the_capability_statement_is_conformant(world, fhir_validator):
    response = world.client().get("/fhir/metadata")  # served without a token
    assert response.status_code == 200
    assert response.json["resourceType"] == "CapabilityStatement"
    conformant(fhir_validator, response, "metadata")


def test_every_operation_definition_is_conformant(world, fhir_validator):
    anonymous = world.client()
    ids = [d["id"] for d in registry.definitions()]
    assert len(ids) >= 8
    for op_id in ids:
        response = anonymous.get(f"/fhir/OperationDefinition/{op_id}")
        assert response.status_code == 200, op_id
        conformant(fhir_validator, response, f"OperationDefinition/{op_id}")
    listed = anonymous.get("/fhir/OperationDefinition")
    assert listed.json["total"] == len(ids)
    conformant(fhir_validator, listed, "OperationDefinition search")


def _refused(response, status: int, what: str, fhir_validator):
    assert response.status_code == status, (what, response.get_data(as_text=True))
    assert response.json["resourceType"] == "OperationOutcome"
    found = conformant(fhir_validator, response, f"{status} {what}")
    assert not any(i["location"].startswith("OperationOutcome.issue") for i in found.errors)


def test_operation_outcomes_of_errors_are_conformant(world, fhir_validator):
    api, v = world.backend, fhir_validator
    _refused(api.get("/fhir/Patient/unknown-id"), 404, "unknown id", v)
    _refused(api.get("/fhir/NoSuchType/1"), 404, "unknown type", v)
    bad_json = api.post("/fhir/Patient", data=b'{"resourceType": "Patient",', headers=JSON)
    _refused(bad_json, 400, "bad JSON", v)
    invalid = {"resourceType": "Observation", "status": 7, "code": {"text": "x"}}
    _refused(api.post("/fhir/Observation", json=invalid, headers=JSON), 400, "invalid", v)
    _refused(api.get("/fhir/Patient/bad$id"), 400, "bad id", v)
    _refused(
        api.get("/fhir/Patient?_sort=nonsense", headers={"Prefer": "handling=strict"}),
        400,
        "strict search",
        v,
    )
    _refused(api.get("/fhir/Observation/gone"), 410, "deleted", v)
    stale = api.put(
        "/fhir/Patient/p1",
        json={"resourceType": "Patient", "id": "p1"},
        headers={**JSON, "If-Match": 'W/"999"'},
    )
    _refused(stale, 412, "version conflict", v)
    _refused(world.client().get("/fhir/Patient/p1"), 401, "no token", v)
    narrow = world.client(backend_token(world.app, "system/Patient.rs"))
    _refused(narrow.get("/fhir/Observation?patient=p1"), 403, "scope", v)
    _refused(api.put("/fhir/OperationDefinition/summary", json={}), 405, "read-only", v)
