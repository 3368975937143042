"""Fixtures for the SMART authorization-server tests: a node with users, clients,
patients, and a helper that drives login + approval through the Flask test client."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

BASE = "http://localhost/fhir"
REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


class FormParser(HTMLParser):
    """Collects the inputs (name, value, type, checked) and options of a page's form."""

    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []
        self.options: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input":
            self.inputs.append(a)
        elif tag == "option":
            self.options.append(a.get("value", ""))


def parse_form(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Flow:
    """Drives /fhir/auth/authorize -> login -> approval -> code with a test client."""

    def __init__(self, client):
        self.client = client

    def authorize_params(
        self, client_id="app-public", scope="launch/patient patient/*.rs", **extra
    ):
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "aud": BASE,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}, verifier

    def login(self, username="alice", password=PASSWORD, totp=None, next_url=""):
        page = self.client.get("/fhir/auth/login", query_string={"next": next_url})
        form = {
            i["name"]: i.get("value", "")
            for i in parse_form(page.text).inputs
            if i.get("type") == "hidden"
        }
        form.update(username=username, password=password, totp=totp or "")
        return self.client.post("/fhir/auth/login", data=form)

    def approve(
        self,
        params,
        username="alice",
        password=PASSWORD,
        scopes=None,
        patient=None,
        decision="approve",
        totp=None,
    ):
        """Full browser-like round trip; returns the final redirect Location."""
        first = self.client.get("/fhir/auth/authorize", query_string=params)
        if first.status_code == 302 and "/fhir/auth/login" in first.headers["Location"]:
            next_url = query_of(first.headers["Location"])["next"]
            signed = self.login(username, password, totp, next_url)
            assert signed.status_code == 302, signed.text
            page = self.client.get(signed.headers["Location"])
        else:
            page = first
        if page.status_code == 302:
            return page.headers["Location"]
        assert page.status_code == 200, page.text
        parsed = parse_form(page.text)
        data = [(i["name"], i.get("value", "")) for i in parsed.inputs if i.get("type") == "hidden"]
        offered = [i["value"] for i in parsed.inputs if i.get("name") == "approved_scope"]
        for scope in offered if scopes is None else scopes:
            data.append(("approved_scope", scope))
        if patient is not None:
            data.append(("patient", patient))
        elif parsed.options:
            data.append(("patient", parsed.options[0]))
        data.append(("decision", decision))
        done = self.client.post(
            "/fhir/auth/authorize",
            data=urlencode(data),
            content_type="application/x-www-form-urlencoded",
        )
        assert done.status_code == 302, done.text
        return done.headers["Location"]

    def code(self, **kw):
        params, verifier = self.authorize_params(
            **{k: v for k, v in kw.items() if k not in ("username", "patient")}
        )
        location = self.approve(
            params, username=kw.get("username", "alice"), patient=kw.get("patient")
        )
        q = query_of(location)
        assert q.get("state") == params["state"], location
        return q["code"], verifier

    def token(self, code, verifier, client_id="app-public", auth=None, **extra):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
            **extra,
        }
        headers = {}
        if auth:
            raw = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        return self.client.post("/fhir/auth/token", data=data, headers=headers)

    def full(self, **kw):
        code, verifier = self.code(**kw)
        response = self.token(code, verifier, client_id=kw.get("client_id", "app-public"))
        assert response.status_code == 200, response.text
        return response.json


def _treatment_consent(patient_id: str, practitioner: str) -> dict:
    from consent.codes import ACT_CODE, ACT_REASON, CONSENT_SCOPE, LOINC

    role = {
        "coding": [{"system": ACT_CODE.replace("ActCode", "ParticipationType"), "code": "PRCP"}]
    }
    return {
        "resourceType": "Consent",
        "id": f"drbob-{patient_id}",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2026-01-01",
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": {"start": "2020-01-01", "end": "2099-12-31"},
            "actor": [{"role": role, "reference": {"reference": practitioner}}],
            "purpose": [{"system": ACT_REASON, "code": "TREAT"}],
        },
    }


def seed(node):
    """Patients p1, p2, encounter e1, users alice / drbob, clients app-public / app-conf."""
    from fhir_server.app import create_app
    from tests.smart_tokens import authorize, backend_token

    open_app = create_app({"NODE": node, "TESTING": True})
    c = authorize(open_app.test_client(), backend_token(open_app))  # a backend service
    for pid, family in (("p1", "Alpha"), ("p2", "Beta")):
        r = c.put(
            f"/fhir/Patient/{pid}",
            json={"resourceType": "Patient", "id": pid, "name": [{"family": family}]},
        )
        assert r.status_code in (200, 201), r.text
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
    }
    r = c.put("/fhir/Encounter/e1", json=encounter)
    assert r.status_code in (200, 201), r.text
    for pid in ("p1", "p2"):  # both patients let drbob treat them (issue 6: consent)
        r = c.put(f"/fhir/Consent/drbob-{pid}", json=_treatment_consent(pid, "Practitioner/d1"))
        assert r.status_code in (200, 201), r.text
    smart = open_app.extensions["phrx.smart"].service
    smart.users.add("alice", "patient", "Patient/p1", PASSWORD)
    smart.users.add("drbob", "practitioner", "Practitioner/d1", PASSWORD)
    smart.clients.add("app-public", "public", redirect_uris=[REDIRECT])
    _, secret = smart.clients.add("app-conf", "symmetric", redirect_uris=[REDIRECT])
    node.test_secret = secret
    return node


@pytest.fixture
def smart_node(sqlite_node):
    """A seeded SQLite node (see :func:`seed`)."""
    return seed(sqlite_node)


@pytest.fixture
def any_smart_node(node):
    """A seeded node on SQLite and on PostgreSQL (the shared ``node`` fixture)."""
    return seed(node)


@pytest.fixture
def smart_app(smart_node):
    from fhir_server.app import create_app

    return create_app({"NODE": smart_node, "TESTING": True})


@pytest.fixture
def smart_client(smart_app):
    return smart_app.test_client()


@pytest.fixture
def smart(smart_app):
    return smart_app.extensions["phrx.smart"].service


@pytest.fixture
def flow(smart_client):
    return Flow(smart_client)


@pytest.fixture
def helpers():
    class H:
        BASE = BASE
        REDIRECT = REDIRECT
        PASSWORD = PASSWORD
        pkce = staticmethod(pkce)
        query_of = staticmethod(query_of)
        parse_form = staticmethod(parse_form)

    return H


@pytest.fixture
def any_flow(any_smart_node):
    """A :class:`Flow` over a seeded node on SQLite and on PostgreSQL."""
    from fhir_server.app import create_app

    app = create_app({"NODE": any_smart_node, "TESTING": True})
    flow = Flow(app.test_client())
    flow.smart = app.extensions["phrx.smart"].service
    return flow
