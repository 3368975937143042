"""Authorization-code flows with PKCE through the Flask test client."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet


def _claims(client, token):
    keys = KeySet.import_key_set(client.get("/fhir/auth/jwks").json)
    return jwt.decode(token, keys, algorithms=["RS256"]).claims


def test_discovery_document(smart_client, helpers):
    r = smart_client.get(
        "/fhir/.well-known/smart-configuration", headers={"Accept": "application/fhir+xml"}
    )
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    doc = r.json
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "jwks_uri",
    ):
        assert doc[name].startswith("http://localhost/fhir/")
    assert doc["issuer"] == helpers.BASE
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert set(doc["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert {
        "launch-ehr",
        "launch-standalone",
        "permission-v2",
        "sso-openid-connect",
        "client-confidential-asymmetric",
    } <= set(doc["capabilities"])
    assert "client_credentials" in doc["grant_types_supported"]


def test_capability_statement_has_oauth_uris(smart_client):
    r = smart_client.get("/fhir/metadata")  # public: no token needed
    assert r.status_code == 200
    security = r.json["rest"][0]["security"]
    ext = security["extension"][0]
    assert ext["url"].endswith("/oauth-uris")
    urls = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert urls["authorize"] == "http://localhost/fhir/auth/authorize"
    assert urls["token"] == "http://localhost/fhir/auth/token"


def test_fhir_requests_need_a_token(smart_client):
    r = smart_client.get("/fhir/Patient/p1")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="phrx"')
    r = smart_client.get("/fhir/Patient/p1", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert r.json["resourceType"] == "OperationOutcome"


def test_standalone_patient_user_gets_own_context(flow, smart_client, helpers):
    token = flow.full(scope="launch/patient patient/*.rs openid fhirUser offline_access")
    assert token["patient"] == "p1"
    assert token["need_patient_banner"] is True
    assert token["smart_style_url"].startswith(helpers.BASE)
    assert token["token_type"] == "Bearer"
    assert 0 < token["expires_in"] <= 3600
    assert token["refresh_token"]
    claims = _claims(smart_client, token["id_token"])
    assert claims["fhirUser"] == f"{helpers.BASE}/Patient/p1"
    assert claims["aud"] == "app-public"
    assert claims["iss"] == helpers.BASE
    r = smart_client.get(
        "/fhir/Patient/p1", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert r.status_code == 200
    assert r.json["id"] == "p1"


def test_token_response_headers(flow):
    code, verifier = flow.code()
    r = flow.token(code, verifier)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Pragma"] == "no-cache"


def test_practitioner_picks_patient(flow, helpers):
    token = flow.full(
        scope="launch/patient patient/*.rs openid fhirUser", username="drbob", patient="p2"
    )
    assert token["patient"] == "p2"
    assert "refresh_token" not in token


def test_practitioner_unknown_patient_refused(flow):
    params, _ = flow.authorize_params(scope="launch/patient patient/*.rs")
    with pytest.raises(AssertionError, match="Choose an existing patient"):
        flow.approve(params, username="drbob", patient="nope")


def test_ehr_launch_context(flow, smart, helpers):
    launch = smart.launches.issue("p1", "e1", "drbob")
    token = flow.full(
        scope="launch openid fhirUser patient/*.rs user/Encounter.r",
        launch=launch,
        username="drbob",
    )
    assert token["patient"] == "p1"
    assert token["encounter"] == "e1"
    assert token["fhirContext"] == [{"reference": "Encounter/e1"}]
    assert token["need_patient_banner"] is False


def test_ehr_launch_by_other_user_refused(flow, smart):
    launch = smart.launches.issue("p1", None, "drbob")
    params, _ = flow.authorize_params(scope="launch patient/*.rs", launch=launch)
    first = flow.client.get("/fhir/auth/authorize", query_string=params)
    next_url = first.headers["Location"].split("next=")[1]
    from urllib.parse import unquote

    flow.login("alice", next_url=unquote(next_url))
    page = flow.client.get(unquote(next_url))
    assert page.status_code == 403


def test_user_narrows_scopes(flow):
    params, verifier = flow.authorize_params(scope="launch/patient patient/*.rs patient/*.cud")
    location = flow.approve(params, scopes=["launch/patient", "patient/*.rs"])
    from urllib.parse import parse_qs, urlsplit

    code = parse_qs(urlsplit(location).query)["code"][0]
    r = flow.token(code, verifier)
    assert r.json["scope"] == "launch/patient patient/*.rs"


def test_user_denies(flow, helpers):
    params, _ = flow.authorize_params()
    location = flow.approve(params, decision="deny")
    q = helpers.query_of(location)
    assert q["error"] == "access_denied"
    assert q["state"] == params["state"]


def test_v1_scopes_and_confidential_client(flow, smart_node):
    code, verifier = flow.code(client_id="app-conf", scope="launch/patient patient/*.read")
    r = flow.token(code, verifier, client_id="app-conf", auth=("app-conf", smart_node.test_secret))
    assert r.status_code == 200, r.text
    assert r.json["scope"] == "launch/patient patient/*.read"
    bad = flow.token(code, verifier, client_id="app-conf", auth=("app-conf", "wrong"))
    assert bad.status_code == 401


def test_confidential_client_needs_its_secret(flow):
    code, verifier = flow.code(client_id="app-conf")
    r = flow.token(code, verifier, client_id="app-conf")
    assert r.status_code in (400, 401)
    assert r.json["error"] == "invalid_client"


def test_login_page_and_wrong_password(flow):
    r = flow.login("alice", "not the password")
    assert r.status_code == 401
    assert "wrong password" in r.text


def test_login_throttled(flow):
    for _ in range(5):
        flow.login("alice", "not the password")
    r = flow.login("alice")  # right password, but locked for a while
    assert r.status_code == 401
    assert "Too many" in r.text
