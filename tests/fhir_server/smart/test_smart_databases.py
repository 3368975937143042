"""The SMART tables on both stores: code flow, replay, refresh, revocation, backend jti."""

from __future__ import annotations

import secrets
import time

from joserfc import jwt
from joserfc.jwk import ECKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _read(client, token):
    return client.get("/fhir/Patient/p1", headers={"Authorization": f"Bearer {token}"})


def test_code_flow_replay_refresh_revoke(any_flow):
    client = any_flow.client
    code, verifier = any_flow.code(scope="launch/patient patient/*.rs offline_access")
    first = any_flow.token(code, verifier)
    assert first.status_code == 200, first.text
    assert _read(client, first.json["access_token"]).status_code == 200
    assert any_flow.token(code, verifier).json["error"] == "invalid_grant"
    assert _read(client, first.json["access_token"]).status_code == 401  # replay revoked it

    token = any_flow.full(scope="launch/patient patient/*.rs offline_access")
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": "app-public",
    }
    renewed = client.post("/fhir/auth/token", data=refresh)
    assert renewed.status_code == 200, renewed.text
    assert _read(client, token["access_token"]).status_code == 401  # rotated away
    revoked = client.post(
        "/fhir/auth/revoke", data={"token": renewed.json["access_token"], "client_id": "app-public"}
    )
    assert revoked.status_code == 200
    assert _read(client, renewed.json["access_token"]).status_code == 401


def test_backend_jti_replay(any_flow):
    key = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, auto_kid=True)
    any_flow.smart.clients.add("svc", "backend", jwks={"keys": [key.as_dict(private=False)]})
    now = int(time.time())
    claims = {
        "iss": "svc",
        "sub": "svc",
        "aud": "http://localhost/fhir/auth/token",
        "exp": now + 240,
        "iat": now,
        "jti": secrets.token_hex(8),
    }
    signed = jwt.encode({"alg": "ES384", "kid": key.kid}, claims, key, algorithms=["ES384"])
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    ok = any_flow.client.post("/fhir/auth/token", data=form)
    assert ok.status_code == 200, ok.text
    assert _read(any_flow.client, ok.json["access_token"]).status_code == 200
    assert any_flow.client.post("/fhir/auth/token", data=form).json["error"] == "invalid_client"
