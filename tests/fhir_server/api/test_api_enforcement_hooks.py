"""Issue 3: the consent hook (``node.consent``), ``$anchor``'s scope rule and the
granular-constraint evaluator, with authentication on (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from fhir_server.access.decision import Decision
from fhir_server.access.granular import meets
from fhir_server.app import create_app


@pytest.fixture
def app(node):
    return create_app({"NODE": node, "TESTING": True})


class RecordingConsent:
    """Withholds every Condition resource (the up-front calls permit); records calls."""

    def __init__(self):
        self.calls = []

    def decide(self, access, action, res_type, resource, patient_id):
        self.calls.append((action, res_type, resource is not None, patient_id))
        return Decision(resource is None or res_type != "Condition", ["test rule"])


@pytest.fixture
def seeded(client):
    for pid in ("p1", "p2"):
        body = {"resourceType": "Patient", "id": pid}
        assert client.put(f"/fhir/Patient/{pid}", json=body).status_code == 201
        cond = {
            "resourceType": "Condition",
            "id": f"c-{pid}",
            "subject": {"reference": f"Patient/{pid}"},
        }
        assert client.put(f"/fhir/Condition/c-{pid}", json=cond).status_code == 201
    return client


def test_consent_hook_runs_after_scope_checks(app, seeded, patient_client):
    p1 = patient_client("p1", "launch/patient patient/Patient.rs patient/Condition.rs")
    consent = RecordingConsent()
    app.extensions["phrx.node"].consent = consent
    # scope failure first: the hook is never asked
    assert p1.get("/fhir/Observation").status_code == 403
    assert consent.calls == []
    # up-front call for the search, then per resource: withheld, and the total counts none of it
    response = p1.get("/fhir/Condition")
    assert response.status_code == 200
    assert "entry" not in response.json and response.json["total"] == 0
    assert ("search-type", "Condition", False, "p1") in consent.calls
    assert ("search-type", "Condition", True, "p1") in consent.calls
    # a denied read answers like a missing resource
    r = p1.get("/fhir/Condition/c-p1")
    assert (
        r.status_code == 404 and r.json["issue"][0]["diagnostics"] == "Condition/c-p1 is not known."
    )
    assert p1.get("/fhir/Patient/p1").status_code == 200
    everything = p1.get("/fhir/Patient/p1/$everything").json
    assert [e["resource"]["resourceType"] for e in everything["entry"]] == ["Patient"]
    assert everything["total"] == 1
    # an up-front denial is a 403
    consent.decide = lambda *a: Decision(False, ["no"])
    assert p1.get("/fhir/Patient/p1").status_code == 403


def test_anchor_needs_a_system_wildcard_scope(seeded, backend_client, patient_client):
    assert patient_client("p1").post("/fhir/$anchor").status_code == 403
    assert backend_client("system/Patient.cruds").post("/fhir/$anchor").status_code == 403
    # allowed (no chain is configured on this node: 503 from the operation itself)
    assert backend_client("system/*.cruds").post("/fhir/$anchor").status_code == 503


def test_system_history_follows_type_scopes(seeded, backend_client):
    patients_only = backend_client("system/Patient.rs")
    history = patients_only.get("/fhir/_history").json
    assert history["total"] == 2
    assert {e["request"]["url"].split("/")[0] for e in history["entry"]} == {"Patient"}


def test_granular_evaluator():
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://c", "code": "laboratory"}]}],
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p1"},
    }
    assert meets(obs, (("category", "laboratory"),))
    assert meets(obs, (("category", "http://c|laboratory"),))
    assert meets(obs, (("category", "vital-signs,laboratory"),))
    assert not meets(obs, (("category", "http://other|laboratory"),))
    assert meets(obs, (("subject", "Patient/p1"),))
    assert not meets(obs, (("subject", "Patient/p2"),))
    assert not meets(obs, (("date", "2020"),))  # not evaluated: fails closed
    assert not meets(obs, (("nonsense", "x"),))
