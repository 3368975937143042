"""Token use (IHE BALP): issuing and revoking a token is audited, without the token."""

from __future__ import annotations

import json

from sqlalchemy import select

from fhir_server.search.runner import run_search
from fhir_server.storage.audit_log import verify_log
from fhir_server.storage.db import versions
from tests.smart_tokens import BACKEND_CLIENT, backend_token


def token_events(node) -> list[dict]:
    found = run_search(node.store, "AuditEvent", [("_count", "1000")]).matches
    return [e for e in found if e["subtype"][0]["code"].startswith("token-")]


def test_an_issued_token_is_audited_without_its_value(app, node):
    token = backend_token(app, "system/Patient.rs")
    (event,) = token_events(node)
    assert event["subtype"][0]["code"] == "token-issue" and event["action"] == "C"
    client = next(a for a in event["agent"] if a["who"].get("identifier"))
    assert client["who"]["identifier"]["value"] == BACKEND_CLIENT
    details = {d["type"]: d["valueString"] for d in event["entity"][0]["detail"]}
    assert details == {"scope": "system/Patient.rs", "grant_type": "client_credentials"}
    jti = event["entity"][0]["what"]["identifier"]["value"]
    assert jti and jti not in token.split(".")[0]  # an id, not the token
    # Nothing stored anywhere holds the token: not the event, not its sealed row.
    assert token not in json.dumps(event)
    signature = token.split(".")[2]
    with node.engine.connect() as conn:
        blobs = [r[0] for r in conn.execute(select(versions.c.sealed))]
    assert all(signature.encode() not in (b or b"") for b in blobs)


def test_a_patient_token_shows_in_the_patients_log_and_revocation_too(app, node, cx):
    smart = app.extensions["phrx.smart"].service
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    issued = cx.bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.rs",
        context={"patient": "p1"},
    )
    assert issued["Authorization"].startswith("Bearer ")
    (event,) = run_search(
        node.store, "AuditEvent", [("patient", "p1"), ("subtype", "token-issue")]
    ).matches
    assert event["agent"][0]["who"]["reference"] == "Patient/p1"
    jti = event["entity"][0]["what"]["identifier"]["value"]

    smart.tokens.revoke(jti)
    revoked = [e for e in token_events(node) if e["subtype"][0]["code"] == "token-revoke"]
    assert len(revoked) == 1 and revoked[0]["entity"][0]["what"]["identifier"]["value"] == jti
    everything = run_search(node.store, "AuditEvent", [("_count", "1000")]).matches
    assert verify_log(node.store, everything).ok
