"""What generic clients expect of the authorization server (issue #15): a public
client refreshes without naming itself (the SMART JS client sends no ``client_id``),
OpenID discovery where OIDC libraries look, and the authorize request by POST."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet

SCOPE = "openid fhirUser launch/patient patient/*.rs offline_access"


def _refresh(flow, refresh_token, headers=None, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return flow.client.post("/fhir/auth/token", data=data, headers=headers or {})


def _read(flow, access_token):
    return flow.client.get("/fhir/Patient/p1", headers={"Authorization": f"Bearer {access_token}"})


def test_public_client_refreshes_without_client_id(flow):
    first = flow.full(scope=SCOPE)
    r = _refresh(flow, first["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.json["refresh_token"] != first["refresh_token"]
    assert r.json["patient"] == "p1"
    assert _read(flow, r.json["access_token"]).status_code == 200
    again = _refresh(flow, r.json["refresh_token"])  # and again, with the rotated one
    assert again.status_code == 200, again.text


def test_replay_without_client_id_still_revokes_the_family(flow):
    first = flow.full(scope=SCOPE)
    second = _refresh(flow, first["refresh_token"]).json
    replay = _refresh(flow, first["refresh_token"])
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert _read(flow, second["access_token"]).status_code == 401


def test_confidential_client_must_still_authenticate(flow, smart_node):
    code, verifier = flow.code(scope=SCOPE, client_id="app-conf")
    issued = flow.token(
        code, verifier, client_id="app-conf", auth=("app-conf", smart_node.test_secret)
    )
    assert issued.status_code == 200, issued.text
    bare = _refresh(flow, issued.json["refresh_token"])
    assert bare.status_code == 401 and bare.json["error"] == "invalid_client"
    wrong = base64.b64encode(b"app-conf:not-the-secret").decode()
    r = _refresh(flow, issued.json["refresh_token"], headers={"Authorization": f"Basic {wrong}"})
    assert r.status_code == 401
    right = base64.b64encode(f"app-conf:{smart_node.test_secret}".encode()).decode()
    r = _refresh(flow, issued.json["refresh_token"], headers={"Authorization": f"Basic {right}"})
    assert r.status_code == 200, r.text


def test_unknown_refresh_token_without_client_id_is_refused(flow):
    r = _refresh(flow, "no-such-token")
    assert r.status_code in (400, 401)
    assert r.json["error"] in ("invalid_client", "invalid_grant")


def test_a_public_clients_token_is_not_taken_for_another_client(flow):
    first = flow.full(scope=SCOPE)
    r = _refresh(flow, first["refresh_token"], client_id="app-conf")
    assert r.status_code in (400, 401)
    assert _refresh(flow, first["refresh_token"]).status_code == 200  # not burnt by it


def test_openid_configuration_at_the_issuer(flow, helpers):
    r = flow.client.get("/fhir/.well-known/openid-configuration")
    assert r.status_code == 200
    doc = r.json
    assert doc["issuer"] == helpers.BASE
    assert doc["jwks_uri"] == f"{helpers.BASE}/auth/jwks"
    for name in ("authorization_endpoint", "token_endpoint", "response_types_supported"):
        assert doc[name]
    assert "public" in doc["subject_types_supported"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    # The ID token it describes: issued by that issuer, verifiable with that JWKS.
    token = flow.full(scope=SCOPE)["id_token"]
    keys = KeySet.import_key_set(
        flow.client.get(doc["jwks_uri"].removeprefix("http://localhost")).json
    )
    assert jwt.decode(token, keys, algorithms=["RS256"]).claims["iss"] == doc["issuer"]


def test_advertised_capabilities_include_authorize_post_and_online(flow):
    caps = flow.client.get("/fhir/.well-known/smart-configuration").json["capabilities"]
    assert {"authorize-post", "permission-online", "sso-openid-connect"} <= set(caps)


def test_authorize_by_post(flow, helpers):
    """authorize-post: the same request as form fields, answered as the GET is."""
    params, verifier = flow.authorize_params(scope=SCOPE)
    flow.login()  # signed in: the POST below gets the approval page, not the sign-in
    page = flow.client.post("/fhir/auth/authorize", data=params)
    assert page.status_code == 200, page.text
    parsed = helpers.parse_form(page.text)
    hidden = [(i["name"], i.get("value", "")) for i in parsed.inputs if i.get("type") == "hidden"]
    assert ("state", params["state"]) in hidden
    offered = [
        ("approved_scope", i["value"]) for i in parsed.inputs if i.get("name") == "approved_scope"
    ]
    done = flow.client.post(
        "/fhir/auth/authorize",
        data=urlencode([*hidden, *offered, ("decision", "approve")]),
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 302, done.text
    query = helpers.query_of(done.headers["Location"])
    assert query["state"] == params["state"]
    token = flow.token(query["code"], verifier)
    assert token.status_code == 200 and token.json["patient"] == "p1"
