"""Consent business rules: 422 with diagnostics and expression, also over HTTP."""

from __future__ import annotations

import pytest

from consent.codes import ACT_REASON
from fhir_server.errors import BusinessRule
from validators.consent_rules import check_consent
from validators.r4 import validate_resource

JSON = {"Content-Type": "application/fhir+json"}


def test_valid_consent_passes(cx):
    consent = cx.privacy_consent()
    assert validate_resource(consent) is consent


@pytest.mark.parametrize(
    ("change", "expression", "words"),
    [
        (lambda p: p.pop("actor"), "Consent.provision.actor", "actor"),
        (lambda p: p["period"].pop("end"), "Consent.provision.period.end", "end"),
        (lambda p: p.pop("period"), "Consent.provision.period.end", "end"),
        (
            lambda p: p.update(purpose=[{"system": ACT_REASON, "code": "FUN"}]),
            "Consent.provision.purpose[0]",
            "Unknown purpose",
        ),
        (
            lambda p: p.update(purpose=[{"system": "http://example.org/x", "code": "TREAT"}]),
            "Consent.provision.purpose[0]",
            "Unknown purpose",
        ),
        (
            lambda p: p.update(provision=[{"type": "deny", "purpose": [{"code": "TREAT"}]}]),
            "Consent.provision.provision[0].purpose[0]",
            "Unknown purpose",
        ),
        (
            lambda p: p.update(period={"start": "2026-05-01", "end": "2026-01-01"}),
            "Consent.provision.period",
            "before",
        ),
    ],
)
def test_broken_consents_are_refused(cx, change, expression, words):
    consent = cx.privacy_consent()
    change(consent["provision"])
    with pytest.raises(BusinessRule) as caught:
        validate_resource(consent)
    error = caught.value
    assert error.status == 422
    assert list(error.expression) == [expression]
    assert words in error.diagnostics


def test_actor_in_nested_provision_is_enough(cx):
    consent = cx.privacy_consent(actors=())
    consent["provision"]["provision"] = [
        {"type": "permit", "actor": [cx.actor_entry("Practitioner/d1")]}
    ]
    check_consent(consent)


def test_break_glass_policy_needs_no_actor(cx):
    check_consent(cx.privacy_consent(actors=(), purposes=("ETREAT", "BTG")))
    with pytest.raises(BusinessRule):
        check_consent(cx.privacy_consent(actors=(), purposes=("TREAT", "BTG")))


def test_other_scopes_are_not_access_policies(cx):
    adr = cx.privacy_consent(actors=(), period=None)
    adr["scope"]["coding"][0]["code"] = "adr"
    check_consent(adr)


def test_http_create_refuses_with_422(app, cx):
    client = app.test_client()
    headers = {**JSON, **cx.bearer(app, scope="system/*.cruds")}
    bad = cx.privacy_consent(actors=())
    response = client.post("/fhir/Consent", json=bad, headers=headers)
    assert response.status_code == 422, response.get_json()
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Consent.provision.actor"]
    good = client.post("/fhir/Consent", json=cx.privacy_consent(), headers=headers)
    assert good.status_code == 201, good.get_json()
