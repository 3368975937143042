"""Consent rules of the consent core (consent.rules): each broken rule raises
ConsentRuleViolation naming the element. The node's 422 for them is checked in
tests/fhir_server/test_validation.py."""

from __future__ import annotations

import pytest

from consent.codes import ACT_REASON
from consent.rules import ConsentRuleViolation, check_consent

BROKEN = [
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
]


def test_valid_consent_passes(cx):
    check_consent(cx.privacy_consent())


@pytest.mark.parametrize(("change", "expression", "words"), BROKEN)
def test_broken_consents_are_refused(cx, change, expression, words):
    consent = cx.privacy_consent()
    change(consent["provision"])
    with pytest.raises(ConsentRuleViolation) as caught:
        check_consent(consent)
    error = caught.value
    assert error.expression == (expression,)
    assert words in error.message
    assert str(error) == error.message


def test_a_privacy_consent_needs_a_provision(cx):
    consent = cx.privacy_consent()
    del consent["provision"]
    with pytest.raises(ConsentRuleViolation) as caught:
        check_consent(consent)
    assert caught.value.expression == ("Consent.provision",)


def test_actor_in_nested_provision_is_enough(cx):
    consent = cx.privacy_consent(actors=())
    consent["provision"]["provision"] = [
        {"type": "permit", "actor": [cx.actor_entry("Practitioner/d1")]}
    ]
    check_consent(consent)


def test_break_glass_policy_needs_no_actor(cx):
    check_consent(cx.privacy_consent(actors=(), purposes=("ETREAT", "BTG")))
    with pytest.raises(ConsentRuleViolation):
        check_consent(cx.privacy_consent(actors=(), purposes=("TREAT", "BTG")))


def test_other_scopes_are_not_access_policies(cx):
    adr = cx.privacy_consent(actors=(), period=None)
    adr["scope"]["coding"][0]["code"] = "adr"
    check_consent(adr)


def test_other_resource_types_are_left_alone():
    check_consent({"resourceType": "Patient"})
