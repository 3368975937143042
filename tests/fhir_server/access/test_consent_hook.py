"""NodeConsent: the guard's hook over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from fhir_server.access.consent_hook import NodeConsent
from fhir_server.access.decision import Interaction
from fhir_server.smart import scopes
from fhir_server.smart.access import AccessContext


def access(user=None, scope="user/*.rs", **context):
    parsed = tuple(p for p in (scopes.parse_resource_scope(s) for s in scope.split()) if p)
    return AccessContext(
        "app", user, context.pop("patient", None), parsed, scope, "u", "j", 0, context
    )


@pytest.fixture
def seeded(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Alpha"}]})
    cx.put(
        node,
        {
            "resourceType": "Condition",
            "id": "dm",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
        },
    )
    return node


def test_consent_write_is_seen_by_the_next_decision(seeded, cx):
    hook = NodeConsent(seeded)
    doctor = access("Practitioner/d1")
    assert not hook.decide(doctor, "read", "Condition", None, "p1").permit
    consent = cx.put(seeded, cx.privacy_consent(period=("2020-01-01", "2099-12-31")))
    decision = hook.decide(doctor, "read", "Condition", None, "p1")
    assert decision.permit, decision.reasons
    loads = hook.engine.loads
    assert hook.decide(doctor, "read", "Condition", None, "p1").permit
    assert hook.engine.loads == loads  # cached: the consent token did not change
    revoked = {**consent, "status": "inactive"}
    revoked.pop("meta")
    cx.put(seeded, revoked)
    assert not hook.decide(doctor, "read", "Condition", None, "p1").permit  # at once


def test_patient_system_client_and_non_patient_data(seeded):
    hook = NodeConsent(seeded)
    assert hook.decide(
        access("Patient/p1", "patient/*.rs", patient="p1"), "read", "Condition", None, "p1"
    )
    assert not hook.decide(access("Patient/p2"), "read", "Condition", None, "p1")
    assert hook.decide(access(None, "system/*.cruds"), "create", "Condition", None, "p1")
    assert hook.decide(access("Practitioner/d9"), "read", "Organization", None, None)
    foreign = access(None, "system/*.rs", actor_identifiers=[["urn:ph", "1"]], actor_country="PH")
    assert not hook.decide(foreign, "read", "Condition", None, "p1")
    gateway = NodeConsent(seeded, is_local_client=lambda client_id: client_id != "app")
    assert not gateway.decide(access(None, "system/*.rs"), "read", "Condition", None, "p1")
    assert not NodeConsent(seeded, system_clients_bypass=False).decide(
        access(None, "system/*.rs"), "read", "Condition", None, "p1"
    )


def test_foreign_practitioner_by_identifier_and_filtering(seeded, cx):
    ph = ("https://ph.example/prc", "0042")
    consent = cx.privacy_consent(actors=((None, ph, "PH"),), period=("2020-01-01", "2099-12-31"))
    consent["provision"]["provision"] = [{"type": "deny", "securityLabel": [cx.label("PSY")]}]
    cx.put(seeded, consent)
    psy = cx.put(
        seeded,
        {
            "resourceType": "Condition",
            "id": "dep",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.9"}]},
        },
    )
    hook = NodeConsent(seeded)
    doctor = access(None, "system/*.rs", actor_identifiers=[list(ph)], actor_country="PH")
    dm = seeded.store.read("Condition", "dm")
    assert hook.decide(doctor, "read", "Condition", dm, "p1").permit
    assert not hook.decide(doctor, "read", "Condition", psy, "p1").permit
    assert [r["id"] for r in hook.filter_resources(doctor, "Condition", [dm, psy], "p1")] == ["dm"]


@pytest.mark.parametrize("interaction", list(Interaction))
def test_every_interaction_is_a_read_or_a_write(seeded, cx, interaction):
    """An ``access`` Consent permits every reading interaction and no writing one."""
    permitted = not interaction.writes
    consent = cx.privacy_consent(period=("2020-01-01", "2099-12-31"))
    consent["provision"]["action"] = [{"coding": [{"code": "access"}]}]
    cx.put(seeded, consent)
    hook = NodeConsent(seeded)
    assert (
        hook.decide(access("Practitioner/d1"), interaction, "Condition", None, "p1").permit
        is permitted
    )
