"""SMART Backend Services: client_credentials with private_key_jwt (RS384 / ES384)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

TOKEN_URL = "http://localhost/fhir/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _key(alg):
    if alg == "RS384":
        return RSAKey.generate_key(2048, parameters={"alg": alg, "use": "sig"}, auto_kid=True)
    return ECKey.generate_key("P-384", parameters={"alg": alg, "use": "sig"}, auto_kid=True)


def _jwks(key):
    return {"keys": [key.as_dict(private=False)]}


def assertion(
    key, alg, client_id="backend", *, iss=None, exp_in=240, jti=None, jku=None, aud=TOKEN_URL
):
    now = int(time.time())
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    if jku:
        header["jku"] = jku
    claims = {
        "iss": iss or client_id,
        "sub": client_id,
        "aud": aud,
        "exp": now + exp_in,
        "iat": now,
        "jti": jti or secrets.token_hex(16),
    }
    return jwt.encode(header, claims, key, algorithms=[alg])


def request_token(client, signed, scope="system/Patient.rs"):
    return client.post(
        "/fhir/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


@pytest.fixture(params=["RS384", "ES384"])
def backend(request, smart):
    alg = request.param
    key = _key(alg)
    smart.clients.add("backend", "backend", jwks=_jwks(key))
    return key, alg


def test_backend_token(backend, smart_client):
    key, alg = backend
    r = request_token(smart_client, assertion(key, alg))
    assert r.status_code == 200, r.text
    body = r.json
    assert body["scope"] == "system/Patient.rs"
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body
    assert r.headers["Cache-Control"] == "no-store"
    read = smart_client.get(
        "/fhir/Patient/p1", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert read.status_code == 200


def test_backend_attacks(backend, smart_client):
    key, alg = backend
    signed = assertion(key, alg)
    assert request_token(smart_client, signed).status_code == 200
    replay = request_token(smart_client, signed)
    assert replay.status_code in (400, 401) and replay.json["error"] == "invalid_client"
    cases = {
        "exp > 5 min": assertion(key, alg, exp_in=600),
        "expired": assertion(key, alg, exp_in=-120),
        "iss != sub": assertion(key, alg, iss="someone-else"),
        "wrong aud": assertion(key, alg, aud="http://localhost/fhir"),
        "foreign jku": assertion(key, alg, jku="https://evil.example/jwks.json"),
        "unregistered key": assertion(_key(alg), alg),
    }
    for name, bad in cases.items():
        r = request_token(smart_client, bad)
        assert r.status_code in (400, 401), name
        assert r.json["error"] == "invalid_client", name


def test_backend_rejects_other_algorithms(smart, smart_client):
    key = RSAKey.generate_key(2048, auto_kid=True)
    smart.clients.add("backend", "backend", jwks=_jwks(key))
    signed = assertion(key, "RS256")
    r = request_token(smart_client, signed)
    assert r.json["error"] == "invalid_client"


def test_backend_scope_errors(backend, smart_client):
    key, alg = backend
    r = request_token(smart_client, assertion(key, alg), scope="patient/*.rs")
    assert r.status_code == 400 and r.json["error"] == "invalid_scope"
    r = request_token(smart_client, assertion(key, alg), scope="system/Patient.bogus")
    assert r.status_code == 400 and r.json["error"] == "invalid_scope"


def test_backend_cannot_use_secret_or_code_grants(backend, smart_client):
    r = smart_client.post(
        "/fhir/auth/token",
        data={"grant_type": "client_credentials", "client_id": "backend", "scope": "system/*.rs"},
    )
    assert r.json["error"] == "invalid_client"


class _JwksHandler(BaseHTTPRequestHandler):
    jwks: ClassVar[dict] = {}
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        body = json.dumps(self.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def jwks_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _JwksHandler.hits = 0
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", _JwksHandler
    server.shutdown()


def test_backend_jwks_url_with_cache(smart, smart_client, jwks_server):
    url, handler = jwks_server
    key = _key("ES384")
    handler.jwks = _jwks(key)
    smart.clients.add("backend", "backend", jwks_url=url)
    assert request_token(smart_client, assertion(key, "ES384", jku=url)).status_code == 200
    assert request_token(smart_client, assertion(key, "ES384")).status_code == 200
    assert handler.hits == 1  # max-age honoured
    foreign = assertion(key, "ES384", jku=url.replace("jwks.json", "other.json"))
    assert request_token(smart_client, foreign).json["error"] == "invalid_client"
    assert handler.hits == 1  # a foreign jku is never fetched
