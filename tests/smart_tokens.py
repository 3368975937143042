"""Access tokens for tests, obtained the way a client would.

* Backend services (``system/`` scopes): SMART Backend Services
  ``client_credentials`` with a ``private_key_jwt`` assertion (RS384), the client
  registered with the node's SMART service. The key is made once per session.
* Apps acting for a user (``patient/`` and ``user/`` scopes): the authorization
  code flow with PKCE through the login and approval pages.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

BACKEND_CLIENT = "phrx-test-backend"
APP_CLIENT = "phrx-test-app"
REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LOCAL_BASE = "http://localhost/fhir"


@functools.cache
def backend_key():
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, parameters={"alg": "RS384", "use": "sig"}, auto_kid=True)


def smart_service(app):
    return app.extensions["phrx.smart"].service


def ensure_backend(app) -> None:
    smart = smart_service(app)
    if smart.clients.get(BACKEND_CLIENT) is None:
        jwks = {"keys": [backend_key().as_dict(private=False)]}
        smart.clients.add(BACKEND_CLIENT, "backend", jwks=jwks, scope="system/*.cruds")


def client_assertion(token_url: str) -> str:
    from joserfc import jwt

    key = backend_key()
    now = int(time.time())
    claims = {
        "iss": BACKEND_CLIENT,
        "sub": BACKEND_CLIENT,
        "aud": token_url,
        "exp": now + 240,
        "iat": now,
        "jti": secrets.token_hex(16),
    }
    header = {"alg": "RS384", "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=["RS384"])


def _backend_form(token_url: str, scope: str) -> dict:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(token_url),
    }


def backend_token(app, scope: str = "system/*.cruds", base: str = LOCAL_BASE) -> str:
    """A backend-services token for ``app`` through its Flask test client."""
    from flask.testing import FlaskClient

    ensure_backend(app)
    plain = FlaskClient(app, app.response_class, use_cookies=False)  # not test_client_class
    response = plain.post("/fhir/auth/token", data=_backend_form(f"{base}/auth/token", scope))
    assert response.status_code == 200, response.text
    return response.json["access_token"]


def backend_token_http(app, base_url: str, scope: str = "system/*.cruds") -> str:
    """The same over HTTP, for an app served at ``base_url`` (…/fhir)."""
    import requests

    ensure_backend(app)
    url = f"{base_url.rstrip('/')}/auth/token"
    response = requests.post(url, data=_backend_form(url, scope), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer_client_class(scope: str = "system/*.cruds"):
    """A ``FlaskClient`` subclass that fetches a backend token when created: set as
    ``app.test_client_class``, every ``app.test_client()`` is signed in."""
    from flask.testing import FlaskClient

    class BearerClient(FlaskClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            authorize(self, backend_token(self.application, scope))

    return BearerClient


def authorize(test_client, token: str):
    """Make every request of a Flask test client carry ``Bearer token``."""
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return test_client


class _Form(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "input":
            self.inputs.append(dict(attrs))


def _hidden(html: str) -> list[tuple[str, str]]:
    parser = _Form()
    parser.feed(html)
    return [(i["name"], i.get("value", "")) for i in parser.inputs if i.get("type") == "hidden"]


def _query(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def user_token(
    app, scope: str, username: str, role: str, fhir_user: str, patient: str | None = None
) -> str:
    """Sign in as ``username`` (created if missing) and approve ``scope`` for the
    test app: authorization code + PKCE, then the code exchanged at the token endpoint."""
    smart = smart_service(app)
    if smart.clients.get(APP_CLIENT) is None:
        smart.clients.add(APP_CLIENT, "public", redirect_uris=[REDIRECT])
    if smart.users.get(username) is None:
        smart.users.add(username, role, fhir_user, PASSWORD)
    browser = app.test_client()
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    params = {
        "response_type": "code",
        "client_id": APP_CLIENT,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "aud": LOCAL_BASE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    first = browser.get("/fhir/auth/authorize", query_string=params)
    assert first.status_code == 302, first.text
    next_url = _query(first.headers["Location"])["next"]
    page = browser.get("/fhir/auth/login", query_string={"next": next_url})
    form = dict(_hidden(page.text), username=username, password=PASSWORD, totp="")
    signed = browser.post("/fhir/auth/login", data=form)
    assert signed.status_code == 302, signed.text
    approval = browser.get(signed.headers["Location"])
    assert approval.status_code == 200, approval.text
    data = _hidden(approval.text) + [("approved_scope", s) for s in scope.split()]
    if patient is not None:
        data.append(("patient", patient))
    data.append(("decision", "approve"))
    done = browser.post(
        "/fhir/auth/authorize",
        data=urlencode(data),
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 302, done.text
    code = _query(done.headers["Location"])["code"]
    token = browser.post(
        "/fhir/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": APP_CLIENT,
        },
    )
    assert token.status_code == 200, token.text
    return token.json["access_token"]


def patient_token(app, patient_id: str, scope: str = "launch/patient patient/*.cruds") -> str:
    """A patient signed in as ``Patient/<patient_id>`` approving ``scope``."""
    return user_token(app, scope, f"patient-{patient_id}", "patient", f"Patient/{patient_id}")


def practitioner_token(app, scope: str = "user/*.cruds", patient: str | None = None) -> str:
    """A practitioner (``Practitioner/doc``); ``patient`` picks the launch patient."""
    return user_token(app, scope, "doctor", "practitioner", "Practitioner/doc", patient)
