"""Attacks on the authorization endpoint, the code exchange and the access tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from fhir_server import ids


def _signed_in(flow, params):
    """Sign in, then return the response of the authorize request itself."""
    first = flow.client.get("/fhir/auth/authorize", query_string=params)
    if first.status_code == 302 and "/fhir/auth/login" in first.headers["Location"]:
        flow.login("alice")
        return flow.client.get("/fhir/auth/authorize", query_string=params)
    return first


@pytest.mark.parametrize("aud", [None, "https://evil.example/fhir", "http://localhost/fhir/"])
def test_bad_aud_gets_no_code(flow, helpers, aud):
    params, _ = flow.authorize_params(aud=aud)
    r = _signed_in(flow, params)
    assert r.status_code == 302
    q = helpers.query_of(r.headers["Location"])
    assert "code" not in q
    assert q["error"] == "invalid_request"
    assert q["state"] == params["state"]


def test_redirect_mismatch_is_not_followed(flow):
    params, _ = flow.authorize_params(redirect_uri="https://app.example/callback/evil")
    r = _signed_in(flow, params)
    assert r.status_code == 400
    assert "Location" not in r.headers


@pytest.mark.parametrize("method", ["plain", None])
def test_plain_or_missing_pkce_method_refused(flow, helpers, method):
    params, _ = flow.authorize_params(code_challenge_method=method)
    q = helpers.query_of(_signed_in(flow, params).headers["Location"])
    assert q["error"] == "invalid_request" and "code" not in q


def test_missing_pkce_refused(flow, helpers):
    params, _ = flow.authorize_params(code_challenge=None, code_challenge_method=None)
    q = helpers.query_of(_signed_in(flow, params).headers["Location"])
    assert q["error"] == "invalid_request" and "code" not in q


@pytest.mark.parametrize("verifier", ["wrong", "", "foreign"])
def test_bad_verifier(flow, helpers, verifier):
    code, _right = flow.code()
    if verifier == "wrong":
        verifier = "x" * 50
    elif verifier == "foreign":
        _, verifier = flow.code()  # another flow's valid verifier
    r = flow.token(code, verifier)
    assert r.status_code == 400
    assert r.json["error"] in ("invalid_grant", "invalid_request")


def test_code_replay_revokes_tokens(flow, smart_client):
    code, verifier = flow.code()
    first = flow.token(code, verifier)
    assert first.status_code == 200
    again = flow.token(code, verifier)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    r = smart_client.get(
        "/fhir/Patient/p1", headers={"Authorization": f"Bearer {first.json['access_token']}"}
    )
    assert r.status_code == 401  # RFC 6749 4.1.2: tokens from a replayed code are revoked


def test_code_used_by_another_client(flow, smart_node):
    code, verifier = flow.code()
    r = flow.token(code, verifier, client_id="app-conf", auth=("app-conf", smart_node.test_secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"


def test_expired_code(flow, monkeypatch):
    code, verifier = flow.code()
    real = ids.now_us()
    monkeypatch.setattr(ids, "now_us", lambda: real + 120 * 10**6)
    r = flow.token(code, verifier)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"


def test_refresh_rotation_binding_and_scope(flow, smart_node):
    token = flow.full(scope="launch/patient patient/*.rs offline_access")
    data = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": "app-public",
    }
    wider = flow.client.post("/fhir/auth/token", data={**data, "scope": "patient/*.cruds"})
    assert wider.status_code == 400 and wider.json["error"] == "invalid_scope"
    other = flow.client.post(
        "/fhir/auth/token",
        data={**data, "client_id": "app-conf", "client_secret": smart_node.test_secret},
    )
    assert other.status_code == 400 and other.json["error"] == "invalid_grant"
    ok = flow.client.post("/fhir/auth/token", data={**data, "scope": "patient/Patient.r"})
    assert ok.status_code == 200, ok.text
    assert ok.json["scope"] == "patient/Patient.r"
    assert ok.json["patient"] == "p1"
    reused = flow.client.post("/fhir/auth/token", data=data)  # rotated: old one is dead
    assert reused.status_code == 400


def _bearer(client, token):
    return client.get("/fhir/Patient/p1", headers={"Authorization": f"Bearer {token}"})


def _forge(claims, header):
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64(header)}.{b64(claims)}."


def test_token_forgeries(flow, smart_client, smart):
    token = flow.full()
    access = token["access_token"]
    assert _bearer(smart_client, access).status_code == 200
    claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
    # alg=none
    assert _bearer(smart_client, _forge(claims, {"alg": "none", "typ": "JWT"})).status_code == 401
    # HS256 signed with the public key (algorithm confusion)
    pem = smart.signing_key.key.as_pem(private=False)
    unsigned = _forge(claims, {"alg": "HS256", "typ": "JWT"})[:-1]
    mac = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    hs = unsigned + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert _bearer(smart_client, hs).status_code == 401
    # wrong audience, properly signed
    wrong = smart.signing_key.sign({**claims, "aud": "https://other.example/fhir"})
    assert _bearer(smart_client, wrong).status_code == 401
    # expired, properly signed
    old = smart.signing_key.sign({**claims, "exp": int(time.time()) - 5})
    assert _bearer(smart_client, old).status_code == 401
    # a signed token whose jti was never issued
    unknown = smart.signing_key.sign({**claims, "jti": "never-issued"})
    assert _bearer(smart_client, unknown).status_code == 401


def test_expired_token_by_clock(flow, smart_client, monkeypatch):
    token = flow.full()
    real_now, real_time = ids.now_us(), time.time()
    monkeypatch.setattr(ids, "now_us", lambda: real_now + 3601 * 10**6)
    monkeypatch.setattr(time, "time", lambda: real_time + 3601)
    assert _bearer(smart_client, token["access_token"]).status_code == 401


def test_introspection_and_revocation(flow, smart_client, helpers):
    token = flow.full(scope="launch/patient patient/*.rs openid fhirUser offline_access")
    form = {"token": token["access_token"], "client_id": "app-public"}
    r = smart_client.post("/fhir/auth/introspect", data=form)
    assert r.status_code == 200
    info = r.json
    assert info["active"] is True
    assert info["client_id"] == "app-public"
    assert info["patient"] == "p1"
    assert info["sub"] == "alice" and info["iss"] == helpers.BASE
    assert info["fhirUser"] == f"{helpers.BASE}/Patient/p1"
    assert info["exp"] > time.time()
    assert "patient/*.rs" in info["scope"]
    assert r.headers["Cache-Control"] == "no-store"
    # revoking the refresh token kills the access token too
    r = smart_client.post(
        "/fhir/auth/revoke", data={"token": token["refresh_token"], "client_id": "app-public"}
    )
    assert r.status_code == 200
    assert smart_client.post("/fhir/auth/introspect", data=form).json == {"active": False}
    assert _bearer(smart_client, token["access_token"]).status_code == 401
    refresh = smart_client.post(
        "/fhir/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": "app-public",
        },
    )
    assert refresh.status_code == 400


def test_other_client_cannot_introspect_or_revoke(flow, smart_client, smart_node):
    token = flow.full()
    auth = {"client_id": "app-conf", "client_secret": smart_node.test_secret}
    r = smart_client.post("/fhir/auth/introspect", data={"token": token["access_token"], **auth})
    assert r.json == {"active": False}
    r = smart_client.post("/fhir/auth/revoke", data={"token": token["access_token"], **auth})
    assert r.status_code == 400
    assert _bearer(smart_client, token["access_token"]).status_code == 200


def test_verified_tokens_are_remembered_by_digest_only(flow, smart_client, smart, monkeypatch):
    """The signature check of a token is done once per process; what is kept is the
    token's SHA-256, and everything else is still checked on every use."""
    access = flow.full()["access_token"]
    assert _bearer(smart_client, access).status_code == 200
    key = smart.signing_key
    assert hashlib.sha256(access.encode()).digest() in key._verified
    assert all(isinstance(k, bytes) and len(k) == 32 for k in key._verified)  # never the token
    # a changed signature is another token: checked again, and refused
    head, body, signature = access.split(".")
    swapped = "B" if signature[-2] == "A" else "A"
    forged = f"{head}.{body}.{signature[:-2]}{swapped}{signature[-1]}"
    assert _bearer(smart_client, forged).status_code == 401
    # the claims handed out are copies: changing one does not change the next
    key.verify(access)["scope"] = "system/*.cruds"
    assert key.verify(access)["scope"] != "system/*.cruds"
    # expiry is checked on each use, also of a remembered token
    real_now, real_time = ids.now_us(), time.time()
    monkeypatch.setattr(ids, "now_us", lambda: real_now + 3601 * 10**6)
    monkeypatch.setattr(time, "time", lambda: real_time + 3601)
    assert _bearer(smart_client, access).status_code == 401


def test_api_requests_set_no_session_and_forged_sessions_fail(flow, smart_client):
    """No session is opened for an API call (its cookie belongs to the login pages);
    where a session cookie is sent, its signature is still checked."""
    access = flow.full()["access_token"]
    r = _bearer(smart_client, access)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    fresh = type(smart_client)(smart_client.application)
    fresh.set_cookie("session", "eyJ1c2VyIjoiYWxpY2UifQ.forged.signature", path="/fhir/auth")
    params, _ = flow.authorize_params()
    r = fresh.get("/fhir/auth/authorize", query_string=params)
    assert r.status_code == 302 and "/fhir/auth/login" in r.headers["Location"]
