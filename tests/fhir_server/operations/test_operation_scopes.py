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
