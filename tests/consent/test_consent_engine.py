"""Truth table of the consent engine (Flask-free, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consent.codes import ACT_REASON, RESOURCE_TYPES
from consent.engine import Actor, ConsentEngine

DR = Actor("Practitioner/d1", country="TW")
OTHER = Actor("Practitioner/d2", country="TW")
PATIENT = Actor("Patient/p1", is_patient=True)
PH_ID = ("https://ph.example/practitioners", "PRC-0042")
PH_DOC = Actor(None, identifiers=(PH_ID,), country="PH")
OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"versionId": "1"},
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2017-10-10",
}


def psy_condition(code="F32.9", rid="cond-psy", when="2020-03-01", security=None):
    cond = {
        "resourceType": "Condition",
        "id": rid,
        "meta": {"versionId": "1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "recordedDate": when,
    }
    if security:
        cond["meta"]["security"] = security
    return cond


def engine_for(*consents):
    return ConsentEngine(lambda pid: [c for c in consents])


def decide(engine, actor=DR, action="read", purpose="TREAT", res_type="Observation", **kw):
    resource = kw.pop("resource", OBS)
    now = kw.pop("now", datetime(2026, 6, 1, tzinfo=UTC))
    return engine.decide(actor, action, purpose, res_type, resource, "p1", now, **kw)


def test_default_deny_without_consent():
    decision = decide(engine_for())
    assert not decision.permit
    assert any("default deny" in r for r in decision.reasons)


def test_patient_is_always_permitted_read_and_write():
    engine = engine_for()
    assert decide(engine, PATIENT).permit
    assert decide(engine, PATIENT, action="write").permit
    # but a patient actor for another patient's record is not
    assert not decide(engine, Actor("Patient/p2", is_patient=True)).permit


def test_actor_match_by_reference(cx):
    engine = engine_for(cx.privacy_consent())
    assert decide(engine, DR).permit
    assert not decide(engine, OTHER).permit


def test_actor_match_by_identifier_and_country(cx):
    consent = cx.privacy_consent(actors=((None, PH_ID, "PH"),))
    engine = engine_for(consent)
    assert decide(engine, PH_DOC).permit
    same_id_other_node = Actor(None, identifiers=(PH_ID,), country="TH")
    assert not decide(engine, same_id_other_node).permit
    assert not decide(engine, Actor(None, identifiers=((PH_ID[0], "other"),), country="PH")).permit


def test_purpose_must_match(cx):
    engine = engine_for(cx.privacy_consent(purposes=("TREAT",)))
    assert decide(engine, purpose="TREAT").permit
    assert not decide(engine, purpose="HRESCH").permit
    assert not decide(engine, purpose=None).permit


@pytest.mark.parametrize(
    ("now", "permitted"),
    [
        (datetime(2025, 12, 31, 23, 59, tzinfo=UTC), False),  # before the start
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), True),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), True),  # end date is inclusive
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), False),  # past the end
    ],
)
def test_period_past_and_future(cx, now, permitted):
    assert decide(engine_for(cx.privacy_consent()), now=now).permit is permitted


def test_action_access_vs_correct(cx):
    read_only = cx.privacy_consent(action=[{"coding": [{"code": "access"}]}])
    engine = engine_for(read_only)
    assert decide(engine, action="read").permit
    assert not decide(engine, action="write").permit
    both = cx.privacy_consent(
        action=[{"coding": [{"code": "access"}]}, {"coding": [{"code": "correct"}]}]
    )
    assert decide(engine_for(both), action="write").permit


def test_data_class_restricts_resource_types(cx):
    consent = cx.privacy_consent(**{"class": [{"system": RESOURCE_TYPES, "code": "Condition"}]})
    engine = engine_for(consent)
    assert not decide(engine, res_type="Observation").permit
    assert decide(engine, res_type="Condition", resource=psy_condition("E11.9")).permit


def test_code_criterion(cx):
    consent = cx.privacy_consent(
        code=[{"coding": [{"system": "http://loinc.org", "code": "718-7"}]}]
    )
    engine = engine_for(consent)
    assert decide(engine).permit
    assert not decide(engine, res_type="Condition", resource=psy_condition("E11.9")).permit


def _deny_labels(cx, *codes):
    nested = {"type": "deny", "securityLabel": [cx.label(c) for c in codes]}
    return _with_nested(cx.privacy_consent(), nested)


def _with_nested(consent, nested):
    consent["provision"]["provision"] = [nested]
    return consent


def test_security_label_deny_nested_provision(cx):
    engine = engine_for(_deny_labels(cx, "PSY", "HIV", "ETH"))
    diabetes = psy_condition("E11.9", rid="c-dm")
    assert decide(engine, res_type="Condition", resource=diabetes).permit
    depression = decide(engine, res_type="Condition", resource=psy_condition("F32.9"))
    assert not depression.permit
    assert any("provision.provision[0] (deny)" in r for r in depression.reasons)
    hiv = psy_condition("B20", rid="c-hiv")
    assert not decide(engine, res_type="Condition", resource=hiv).permit
    declared = psy_condition("Z00.0", rid="c-lab", security=[cx.label("HIV")])
    assert not decide(engine, res_type="Condition", resource=declared).permit


def test_type_level_request_gets_filter_obligation(cx):
    engine = engine_for(_deny_labels(cx, "PSY"))
    decision = decide(engine, res_type="Condition", resource=None)
    assert decision.permit
    excludes = [o for o in decision.obligations if o.code == "exclude"]
    assert excludes and excludes[0].detail["criteria"]["securityLabel"][0]["code"] == "PSY"


def test_nested_permit_carves_exception_from_root_deny(cx):
    root = {
        "type": "deny",
        "period": {"start": "2026-01-01", "end": "2026-12-31"},
        "provision": [
            {"type": "permit", "actor": [cx.actor_entry("Practitioner/d1")]},
        ],
    }
    engine = engine_for(cx.privacy_consent(provision=root))
    assert decide(engine, DR).permit
    assert not decide(engine, OTHER).permit


def test_two_consents_with_base_deny_do_not_block_each_other(cx):
    def only(actor, cid):
        root = {"type": "deny", "provision": [{"type": "permit", "actor": [cx.actor_entry(actor)]}]}
        return cx.privacy_consent(cid=cid, provision=root)

    engine = engine_for(only("Practitioner/d1", "a"), only("Practitioner/d2", "b"))
    assert decide(engine, DR).permit
    assert decide(engine, OTHER).permit


def test_explicit_deny_in_another_consent_overrides(cx):
    deny_psy = cx.privacy_consent(
        cid="deny",
        actors=(),
        purposes=(),
        provision=None,
        type="deny",
        securityLabel=[cx.label("PSY")],
    )
    engine = engine_for(cx.privacy_consent(), deny_psy)
    assert not decide(engine, res_type="Condition", resource=psy_condition()).permit
    assert decide(engine).permit


def test_data_period(cx):
    consent = cx.privacy_consent(dataPeriod={"start": "2017-01-01", "end": "2017-12-31"})
    engine = engine_for(consent)
    assert decide(engine).permit  # effective 2017-10-10
    recent = psy_condition("E11.9", rid="dm2020", when="2020-03-01")
    assert not decide(engine, res_type="Condition", resource=recent).permit


def test_inactive_and_foreign_consents_are_ignored(cx):
    assert not decide(engine_for(cx.privacy_consent(status="inactive"))).permit
    assert not decide(engine_for(cx.privacy_consent(patient="p2"))).permit
    adr = cx.privacy_consent()
    adr["scope"]["coding"][0]["code"] = "adr"
    assert not decide(engine_for(adr)).permit


def test_cache_hits_and_invalidation(cx):
    store = {"consents": [cx.privacy_consent()], "version": 1}
    engine = ConsentEngine(
        lambda pid: store["consents"], consent_token=lambda pid: store["version"]
    )
    assert decide(engine).permit
    assert decide(engine).permit
    assert engine.loads == 1  # second decision from cache
    store["consents"] = [cx.privacy_consent(status="inactive")]
    store["version"] = 2  # what NodeConsent's token does on any Consent write
    assert not decide(engine).permit
    assert engine.loads == 2
    store["consents"] = [cx.privacy_consent()]
    engine.consent_changed("p1")  # the explicit bump works too
    assert decide(engine).permit


def test_cached_decision_respects_period_boundaries(cx):
    engine = engine_for(cx.privacy_consent())
    inside = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert decide(engine, now=inside).permit
    assert not decide(engine, now=inside + timedelta(hours=2)).permit


def test_break_glass_needs_policy_justification_and_summary(cx):
    btg_policy = cx.privacy_consent(cid="btg", actors=(), purposes=("ETREAT", "BTG"))
    engine = engine_for(btg_policy)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    args = dict(actor=OTHER, purpose="ETREAT", res_type="Composition", resource=None, now=now)
    granted = decide(engine, justification="unconscious in ER", operation="summary", **args)
    assert granted.permit and granted.break_glass
    assert granted.valid_until == now + timedelta(hours=1)
    codes = {o.code for o in granted.obligations}
    assert {"audit-break-glass", "notify-patient", "limit-to-operation"} <= codes
    assert not decide(engine, justification="", operation="summary", **args).permit
    assert not decide(engine, justification="x", operation=None, **args).permit
    assert not decide(engine, justification="x", operation="summary", action="write", **args).permit
    # the ordinary TREAT purpose is not opened by a break-glass-only policy
    assert not decide(engine, actor=OTHER, purpose="TREAT").permit


def test_break_glass_refused_without_policy(cx):
    engine = engine_for(cx.privacy_consent())  # TREAT for d1 only
    decision = decide(
        engine, actor=OTHER, purpose="BTG", resource=None, justification="x", operation="summary"
    )
    assert not decision.permit
    assert any("ETREAT/BTG" in r for r in decision.reasons)


def test_break_glass_purpose_codes_are_v3(cx):
    consent = cx.privacy_consent()
    consent["provision"]["purpose"] = [{"system": ACT_REASON, "code": "TREAT"}]
    assert decide(engine_for(consent)).permit


def test_type_level_permit_restricted_to_codes_is_conditional(cx):
    hba1c = {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}
    engine = engine_for(cx.privacy_consent(code=[hba1c]))
    decision = decide(engine, resource=None)
    assert decision.permit
    assert [o.code for o in decision.obligations] == ["include-only"]
    assert not decide(engine).permit  # OBS is another code


def test_a_decision_is_truthy_only_when_it_permits(cx):
    engine = engine_for(cx.privacy_consent())
    assert decide(engine) and not decide(engine, OTHER)
    assert "default deny" in decide(engine, OTHER).reason


def test_labels_inferred_from_icd9_and_declared():
    from consent.labels import security_labels

    def labels(system, code):
        found = security_labels({"code": {"coding": [{"system": system, "code": code}]}})
        return {c for _, c in found}

    assert labels("http://hl7.org/fhir/sid/icd-9-cm", "296.2") == {"PSY"}
    assert labels("http://hl7.org/fhir/sid/icd-9-cm", "303.9") == {"ETH", "PSY"}
    assert labels("http://hl7.org/fhir/sid/icd-9-cm", "042") == {"HIV"}
    assert labels("http://hl7.org/fhir/sid/icd-10-cm", "F10.2") == {"ETH", "PSY"}
    assert labels("http://hl7.org/fhir/sid/icd-10-cm", "Z21") == {"HIV"}
    assert labels("http://hl7.org/fhir/sid/icd-10-cm", "E11.9") == set()


def test_a_named_consent_must_permit_on_its_own(cx):
    """A federation gateway names the share it acts under: a broader Consent for the
    same actor does not widen it, another Consent's denial still applies."""
    narrow = cx.privacy_consent(
        cid="narrow", actors=((None, PH_ID, "PH"),), **{"class": [_class("Condition")]}
    )
    broad = cx.privacy_consent(cid="broad", actors=((None, PH_ID, "PH"),))
    engine = engine_for(narrow, broad)
    assert decide(engine, PH_DOC).permit  # Observation: the broad Consent permits
    assert not decide(engine, PH_DOC, named_consent="narrow").permit
    assert decide(engine, PH_DOC, named_consent="broad").permit
    cond = psy_condition(code="E11.9", rid="c-dm")
    assert decide(engine, PH_DOC, res_type="Condition", resource=cond, named_consent="narrow")
    assert not decide(engine, PH_DOC, named_consent="no-such-consent").permit
    deny = cx.privacy_consent(cid="deny", actors=((None, PH_ID, "PH"),), type="deny")
    assert not decide(engine_for(broad, deny), PH_DOC, named_consent="broad").permit


def _class(res_type: str) -> dict:
    return {"system": RESOURCE_TYPES, "code": res_type}
