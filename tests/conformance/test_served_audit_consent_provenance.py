"""The node's own records as it serves them: AuditEvents, Consents, Provenances of
imports and of anchoring (HL7 validator, issue #15)."""

from __future__ import annotations

from tests.conformance.served import conformant
from tests.smart_tokens import authorize, backend_token, patient_token


def _params(body: dict) -> dict:
    return {p["name"]: p for p in body["parameter"]}


def test_audit_events_are_conformant(world, fhir_validator):
    response = world.backend.get("/fhir/AuditEvent?_count=500")
    assert response.status_code == 200, response.json
    events = [e["resource"] for e in response.json["entry"]]
    kinds = {s["code"] for e in events for s in e["subtype"]}
    # the story's events: writes, reads, searches, a disclosure, denials, break-glass
    assert {"create", "update", "read", "search-type", "disclosure", "break-glass"} <= kinds
    refused = {s["code"] for e in events if e["outcome"] != "0" for s in e["subtype"]}
    assert {"read", "search-type"} <= refused  # a withheld record, a type outside the share
    conformant(fhir_validator, response, "AuditEvent search")
    seen: set[tuple] = set()
    for event in events:
        kind = (*sorted(s["code"] for s in event["subtype"]), event["outcome"])
        if kind in seen:
            continue
        seen.add(kind)
        read = world.backend.get(f"/fhir/AuditEvent/{event['id']}")
        conformant(fhir_validator, read, f"AuditEvent {kind}")


def test_the_erasure_audit_event_is_conformant(tmp_path, fhir_validator):
    """On a node of its own, apart from the world's history Bundles (with an erased
    version in it, ``GET /fhir/_history`` answers 410)."""
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=tmp_path / "data"))
    try:
        app = create_app({"NODE": node, "TESTING": True})
        backend = authorize(app.test_client(), backend_token(app))
        patient = {"resourceType": "Patient", "id": "p3", "name": [{"family": "Chen"}]}
        assert backend.put("/fhir/Patient/p3", json=patient).status_code == 201
        own = authorize(app.test_client(), patient_token(app, "p3"))
        assert own.post("/fhir/Patient/p3/$erase").status_code == 200
        found = backend.get("/fhir/AuditEvent?patient=p3&_count=100").json
        erasures = [
            e["resource"]["id"]
            for e in found["entry"]
            if e["resource"]["subtype"][0]["code"] == "erase"
        ]
        assert len(erasures) == 1
        response = backend.get(f"/fhir/AuditEvent/{erasures[0]}")
        conformant(fhir_validator, response, "AuditEvent erase")
    finally:
        node.close()


def test_consents_are_conformant(world, fhir_validator):
    shared = _params(world.shared)["consent"]["resource"]
    for consent_id in (shared["id"], world.policy["id"]):
        response = world.patient.get(f"/fhir/Consent/{consent_id}")
        assert response.status_code == 200, response.json
        conformant(fhir_validator, response, f"Consent/{consent_id}")
    found = world.patient.get("/fhir/Consent?patient=p1")
    ids = {e["resource"]["id"] for e in found.json["entry"]}
    assert {shared["id"], world.policy["id"]} <= ids  # (and the $share test's, if it ran)
    conformant(fhir_validator, found, "Consent search")


def test_the_share_result_is_conformant(world, fhir_validator):
    response = world.patient.post(
        "/fhir/Patient/p1/$share",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "recipient", "valueReference": {"reference": "Practitioner/dB"}},
                {"name": "class", "valueCode": "Observation"},
            ],
        },
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.json
    conformant(fhir_validator, response, "$share result")


def test_the_import_provenance_is_conformant(world, fhir_validator):
    reference = _params(world.imported.json)["provenance"]["valueReference"]["reference"]
    response = world.backend.get(f"/fhir/{reference}")
    assert response.status_code == 200
    conformant(fhir_validator, response, f"import {reference}")


def test_anchoring_provenances_are_conformant(world, fhir_validator):
    assert _params(world.anchored)["batches"]["valueInteger"] >= 1
    for url in (
        "/fhir/Patient/p1/_history/1/$provenance",
        "/fhir/Condition?patient=p1&_anchor-provenance=true",
        "/fhir/Patient/p1/$everything?_anchor-provenance=true",
    ):
        response = world.backend.get(url)
        assert response.status_code == 200, (url, response.json)
        body = response.json
        if body["resourceType"] == "Bundle":
            types = [e["resource"]["resourceType"] for e in body["entry"]]
            assert "Provenance" in types, url
        conformant(fhir_validator, response, url)


def test_verify_and_anchor_results_are_conformant(world, fhir_validator):
    verified = world.backend.get("/fhir/Patient/p1/_history/1/$verify")
    assert _params(verified.json)["result"]["valueBoolean"] is True
    conformant(fhir_validator, verified, "$verify")
    anchored = world.backend.post("/fhir/$anchor")
    assert anchored.status_code == 200
    conformant(fhir_validator, anchored, "$anchor")
