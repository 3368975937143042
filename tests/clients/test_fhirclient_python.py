"""Python ``fhirclient`` (SMART on FHIR's client, pinned 4.4.0) against a real node:
standalone launch with PKCE through the node's sign-in and approval pages, read, search,
paging over ``next`` links, refresh; a practitioner signing in with TOTP picks a patient."""

from __future__ import annotations

import pytest

from tests.clients.conftest import ALICE, BOB, FAMILIES, OBSERVATIONS, PY_CLIENT
from tests.clients.live_node import PY_REDIRECT, UserAgent, query_of

pytest.importorskip("fhirclient", reason="python fhirclient is not installed")

SCOPE = "launch/patient openid fhirUser patient/*.rs offline_access"


def _app(live_node, scope=SCOPE):
    from fhirclient import client

    settings = {
        "app_id": PY_CLIENT,
        "api_base": live_node.base,
        "redirect_uri": PY_REDIRECT,
        "scope": scope,
    }
    return client.FHIRClient(settings=settings)


def _launch(live_node, username, patient=None, scope=SCOPE):
    smart = _app(live_node, scope)
    authorize_url = smart.authorize_url
    callback = UserAgent(live_node, username).approve(authorize_url, patient=patient)
    assert callback.startswith(PY_REDIRECT + "?"), callback
    smart.handle_callback(callback)
    return smart, authorize_url


@pytest.fixture(scope="module")
def alice_app(live_node):
    return _launch(live_node, "alice")


def test_standalone_launch_with_pkce(alice_app, live_node):
    smart, authorize_url = alice_app
    sent = query_of(authorize_url)
    assert authorize_url.startswith(f"{live_node.base}/auth/authorize?")
    assert sent["code_challenge_method"] == "S256"
    assert len(sent["code_challenge"]) == 43  # base64url(SHA-256(verifier)), unpadded
    assert sent["aud"] == live_node.base
    assert smart.ready
    assert smart.patient_id == ALICE
    assert smart.launch_context["need_patient_banner"] is True
    granted = smart.launch_context["scope"].split()
    assert "launch/patient" in granted and "patient/*.rs" in granted


def test_read_patient(alice_app):
    from fhirclient.models.patient import Patient

    smart, _ = alice_app
    patient = Patient.read(ALICE, smart.server)
    assert patient.id == ALICE
    assert patient.name[0].family == FAMILIES[ALICE]
    assert patient.meta.versionId
    assert smart.patient.name[0].family == FAMILIES[ALICE]


def test_search(alice_app):
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient

    smart, _ = alice_app
    found = list(
        Patient.where(struct={"family": FAMILIES[ALICE]}).perform_resources_iter(smart.server)
    )
    assert [p.id for p in found] == [ALICE]
    heart = Observation.where(struct={"code": "http://loinc.org|8867-4", "subject": ALICE})
    assert len(list(heart.perform_resources_iter(smart.server))) == OBSERVATIONS
    none = Observation.where(struct={"code": "http://loinc.org|0000-0"})
    assert list(none.perform_resources_iter(smart.server)) == []


def test_paging_follows_next_links(alice_app):
    from fhirclient.models.observation import Observation

    smart, _ = alice_app
    search = Observation.where(struct={"subject": f"Patient/{ALICE}", "_count": "2"})
    pages = list(search.perform_iter(smart.server))
    sizes = [len(page.entry or []) for page in pages]
    assert sizes == [2, 2, 1]
    nexts = [[link.relation for link in page.link].count("next") for page in pages]
    assert nexts == [1, 1, 0]
    ids = [e.resource.id for page in pages for e in page.entry]
    assert sorted(ids) == [f"cl-obs-{n}" for n in range(OBSERVATIONS)]


def test_patient_token_is_confined_to_the_patient(alice_app):
    from fhirclient.models.patient import Patient
    from fhirclient.server import FHIRNotFoundException, FHIRPermissionDeniedException

    smart, _ = alice_app
    with pytest.raises((FHIRNotFoundException, FHIRPermissionDeniedException)):
        Patient.read(BOB, smart.server)  # another patient's record: not for this token
    found = Patient.where(struct={"family": FAMILIES[BOB]}).perform_resources_iter(smart.server)
    assert list(found) == []


def test_refresh_token_gives_a_new_access_token(live_node):
    from fhirclient.models.patient import Patient

    smart, _ = _launch(live_node, "alice")
    before = smart.server.auth.access_token
    assert smart.server.auth.refresh_token
    assert smart.reauthorize() is not None
    assert smart.server.auth.access_token != before
    assert Patient.read(ALICE, smart.server).id == ALICE


def test_practitioner_with_totp_chooses_a_patient(live_node):
    from fhirclient.models.encounter import Encounter

    smart, _ = _launch(live_node, "drtotp", patient=BOB, scope="launch/patient patient/*.rs")
    assert smart.patient_id == BOB
    assert smart.patient.name[0].family == FAMILIES[BOB]
    encounters = Encounter.where(struct={"patient": BOB}).perform_resources_iter(smart.server)
    assert [e.id for e in encounters] == ["cl-enc"]
