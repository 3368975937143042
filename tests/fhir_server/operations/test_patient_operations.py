"""HTTP: $summary, $share, $erase and break-glass with SMART tokens, and their audit trail."""

from __future__ import annotations

import pytest

from fhir_server.operations.definition import CANONICAL_BASE
from fhir_server.search.runner import run_search
from fhir_server.storage.audit_log import verify_log

JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def web(app, node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lin"}]})
    cx.put(node, {"resourceType": "Patient", "id": "p2"})
    cx.put(
        node,
        {
            "resourceType": "Condition",
            "id": "dm",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
        },
    )
    smart = app.extensions["phrx.smart"].service
    smart.users.add("root", "admin", "Practitioner/admin", "correct horse battery")

    class Web:
        client = app.test_client()
        patient = cx.bearer(
            app,
            username="alice",
            fhir_user="Patient/p1",
            scope="patient/*.cruds",
            context={"patient": "p1"},
        )
        doctor = cx.bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
        other = cx.bearer(app, username="drcat", fhir_user="Practitioner/d2", scope="user/*.rs")
        admin = cx.bearer(
            app, username="root", fhir_user="Practitioner/admin", scope="user/*.cruds"
        )

    Web.node = node
    return Web


def audit_events(node):
    """Access events (the token-issue events of the fixtures left out)."""
    return [e for e in whole_log(node) if not e["subtype"][0]["code"].startswith("token-")]


def whole_log(node):
    return run_search(node.store, "AuditEvent", [("_count", "1000")]).matches


def grant(web, who="Practitioner/d1", headers=None):
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "recipient", "valueReference": {"reference": who}}],
    }
    return web.client.post(
        "/fhir/Patient/p1/$share", json=body, headers={**JSON, **(headers or web.patient)}
    )


def test_patient_reads_own_summary_and_it_is_audited(web):
    response = web.client.get("/fhir/Patient/p1/$summary", headers=web.patient)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["type"] == "document"
    events = audit_events(web.node)
    assert [e["subtype"][0]["code"] for e in events] == ["read"]
    assert verify_log(web.node.store, whole_log(web.node)).ok
    other = web.client.get("/fhir/Patient/p2/$summary", headers=web.patient)
    assert other.status_code == 403  # confined to the token's patient


def test_share_then_revoke_over_http(web):
    denied = web.client.get("/fhir/Patient/p1/$summary", headers=web.doctor)
    assert denied.status_code == 403
    created = grant(web)
    assert created.status_code == 201, created.get_json()
    share_id = next(
        p["valueString"] for p in created.get_json()["parameter"] if p["name"] == "share"
    )
    assert web.client.get("/fhir/Patient/p1/$summary", headers=web.doctor).status_code == 200
    assert web.client.get("/fhir/Patient/p1/$summary", headers=web.other).status_code == 403
    revoke = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "revoke", "valueBoolean": True},
            {"name": "share", "valueString": share_id},
        ],
    }
    done = web.client.post("/fhir/Patient/p1/$share", json=revoke, headers={**JSON, **web.patient})
    assert done.status_code == 200, done.get_json()
    assert web.client.get("/fhir/Patient/p1/$summary", headers=web.doctor).status_code == 403
    events = audit_events(web.node)
    kinds = sorted(e["subtype"][0]["code"] for e in events)
    assert kinds == ["create", "read", "read", "read", "read", "update"]
    assert "create" in kinds and "update" in kinds
    assert sum(e["outcome"] == "4" for e in events) == 3  # three denied reads, one read
    assert verify_log(web.node.store, whole_log(web.node)).ok


def test_only_the_patient_or_an_admin_may_share_or_erase(web):
    assert grant(web, headers=web.doctor).status_code == 403
    assert web.client.post("/fhir/Patient/p1/$erase", headers=web.doctor).status_code == 403
    assert grant(web, headers=web.admin).status_code == 201


def test_erase_over_http(web):
    response = web.client.post("/fhir/Patient/p1/$erase", headers=web.patient)
    assert response.status_code == 200, response.get_json()
    values = {p["name"]: p for p in response.get_json()["parameter"]}
    assert values["keyDestroyed"]["valueBoolean"] is True
    assert values["erased"]["valueInteger"] == 2
    audit_id = values["audit"]["valueReference"]["reference"].split("/")[1]
    assert web.node.store.read("AuditEvent", audit_id)["subtype"][0]["code"] == "erase"
    gone = web.client.get("/fhir/Patient/p1/$summary", headers=web.patient)
    assert gone.status_code == 410
    assert web.client.post("/fhir/Patient/p2/$erase", headers=web.admin).status_code == 200


def test_break_glass_summary(web, cx):
    policy = cx.privacy_consent(
        cid="btg", actors=(), purposes=("ETREAT",), period=("2020-01-01", "2099-12-31")
    )
    cx.put(web.node, policy)
    url = "/fhir/Patient/p1/$summary"
    no_reason = web.client.get(url, query_string={"purpose": "ETREAT"}, headers=web.other)
    assert no_reason.status_code == 403
    granted = web.client.get(
        url,
        query_string={"purpose": "ETREAT", "justification": "unconscious at ER"},
        headers=web.other,
    )
    assert granted.status_code == 200, granted.get_json()
    assert web.client.get(url, headers=web.other).status_code == 403  # TREAT is not opened
    glass = [e for e in audit_events(web.node) if e["subtype"][0]["code"] == "break-glass"]
    assert sorted(e["outcome"] for e in glass) == ["0", "4"]
    detail = next(e for e in glass if e["outcome"] == "0")["entity"][0]["detail"][0]
    assert detail["valueString"] == "unconscious at ER"
    patient_log = run_search(web.node.store, "AuditEvent", [("patient", "p1")]).matches
    assert any(
        e["subtype"][0]["code"] == "break-glass" for e in patient_log
    )  # shown to the patient


def test_break_glass_refused_without_policy(web):
    response = web.client.get(
        "/fhir/Patient/p1/$summary",
        query_string={"purpose": "BTG", "justification": "emergency"},
        headers=web.other,
    )
    assert response.status_code == 403


def test_capability_statement_lists_the_consent_operations(app):
    operations = app.test_client().get("/fhir/metadata").get_json()["rest"][0]["operation"]
    listed = {op["name"]: op["definition"] for op in operations}
    assert {"summary", "erase", "share"} <= set(listed)
    assert listed["summary"] == f"{CANONICAL_BASE}/OperationDefinition/summary"
    # the node's own definition, derived from the IPS one
    served = app.test_client().get("/fhir/OperationDefinition/summary").get_json()
    assert served["base"] == "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"
