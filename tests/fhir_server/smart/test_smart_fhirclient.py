"""A real client: python ``fhirclient`` completes a standalone launch over HTTP."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


class _Inputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: list[tuple[str, str, str]] = []
        self.options: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.fields.append((a["name"], a.get("value", ""), a.get("type", "text")))
        elif tag == "option":
            self.options.append(a.get("value", ""))


def _parse(html):
    parser = _Inputs()
    parser.feed(html)
    return parser


def browse_and_approve(authorize_url, username, password=PASSWORD, patient=None):
    """Act as the user's browser: sign in, approve everything, return the callback URL."""
    s = requests.Session()
    r = s.get(authorize_url, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    login_url = urljoin(authorize_url, r.headers["Location"])
    page = s.get(login_url, timeout=10)
    form = {n: v for n, v, t in _parse(page.text).fields if t == "hidden"}
    form.update(username=username, password=password)
    r = s.post(urljoin(login_url, "/fhir/auth/login"), data=form, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    page = s.get(urljoin(login_url, r.headers["Location"]), timeout=10)
    assert page.status_code == 200, page.text
    parsed = _parse(page.text)
    data = [(n, v) for n, v, t in parsed.fields if t in ("hidden", "checkbox")]
    if parsed.options:
        data.append(("patient", patient or parsed.options[0]))
    data.append(("decision", "approve"))
    r = s.post(
        urljoin(login_url, "/fhir/auth/authorize"), data=data, allow_redirects=False, timeout=10
    )
    assert r.status_code == 302, r.text
    return r.headers["Location"]


@pytest.fixture
def live(smart_app):
    from fhir_server.serving import ThreadedServer

    server = ThreadedServer(smart_app, port=0).start()
    yield f"http://127.0.0.1:{server.port}/fhir"
    server.stop()


def test_fhirclient_standalone_launch(live):
    from fhirclient import client
    from fhirclient.models.patient import Patient

    settings = {
        "app_id": "app-public",
        "api_base": live,
        "redirect_uri": REDIRECT,
        "scope": "launch/patient patient/*.rs openid fhirUser",
    }
    smart = client.FHIRClient(settings=settings)
    authorize_url = smart.authorize_url
    assert authorize_url.startswith(f"{live}/auth/authorize?")
    callback = browse_and_approve(authorize_url, "alice")
    assert callback.startswith(REDIRECT)
    smart.handle_callback(callback)
    assert smart.ready
    assert smart.patient_id == "p1"
    patient = smart.patient
    assert isinstance(patient, Patient)
    assert patient.name[0].family == "Alpha"
    assert smart.launch_context["need_patient_banner"] is True


def test_fhirclient_practitioner_selects_patient(live):
    from fhirclient import client

    smart = client.FHIRClient(
        settings={
            "app_id": "app-public",
            "api_base": live,
            "redirect_uri": REDIRECT,
            "scope": "launch/patient patient/*.rs",
        }
    )
    callback = browse_and_approve(smart.authorize_url, "drbob", patient="p2")
    smart.handle_callback(callback)
    assert smart.patient_id == "p2"
    assert smart.patient.name[0].family == "Beta"
