"""$share and $erase need scopes that cover them, even for the patient themself."""

from __future__ import annotations

import pytest

JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def web(app, node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    return app.test_client()


def _patient(app, cx, scope):
    context = {"patient": "p1"}
    return cx.bearer(app, username="alice", fhir_user="Patient/p1", scope=scope, context=context)


def _share_body():
    recipient = {"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}}
    return {"resourceType": "Parameters", "parameter": [recipient]}


def test_a_read_only_token_cannot_share_or_erase(app, cx, web):
    reader = {**_patient(app, cx, "launch/patient patient/Observation.rs"), **JSON}
    share = web.post("/fhir/Patient/p1/$share", json=_share_body(), headers=reader)
    assert share.status_code == 403
    erase = web.post("/fhir/Patient/p1/$erase", headers=reader)
    assert erase.status_code == 403
    assert web.get("/fhir/Patient/p1", headers=_patient(app, cx, "patient/*.rs")).status_code == 200


def test_a_token_that_covers_them_can(app, cx, web):
    owner = {**_patient(app, cx, "launch/patient patient/*.cruds"), **JSON}
    assert web.post("/fhir/Patient/p1/$share", json=_share_body(), headers=owner).status_code in (
        200,
        201,
    )


def test_the_summary_holds_only_what_the_token_may_read(app, cx, node, web):
    cx.put(
        node,
        {
            "resourceType": "Condition",
            "id": "dm",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
        },
    )
    narrow = _patient(app, cx, "launch/patient patient/Patient.r")
    bundle = web.get("/fhir/Patient/p1/$summary", headers=narrow).get_json()
    kinds = {e["resource"]["resourceType"] for e in bundle.get("entry", [])}
    assert "Condition" not in kinds
    wide = _patient(app, cx, "launch/patient patient/*.rs")
    bundle = web.get("/fhir/Patient/p1/$summary", headers=wide).get_json()
    assert "Condition" in {e["resource"]["resourceType"] for e in bundle["entry"]}
