"""$share (Flask-free): Consent creation, key release to a foreign node, revocation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from consent.tables import released_keys
from fhir_server.access.consent_hook import NodeConsent
from fhir_server.errors import BadRequest, NotFound
from fhir_server.operations import share
from fhir_server.smart import scopes
from fhir_server.smart.access import AccessContext
from vault.keyring import KeyRing
from vault.release import generate_x25519_keypair, unwrap_x25519

PH_DOC = {"system": "https://ph.example/prc", "value": "0042"}


def params(*items):
    return {"resourceType": "Parameters", "parameter": [dict(i) for i in items]}


def foreign(country, identifier=PH_DOC):
    ctx = {"actor_identifiers": [[identifier["system"], identifier["value"]]]}
    ctx["actor_country"] = country
    parsed = (scopes.parse_resource_scope("system/*.rs"),)
    return AccessContext("ph-node", None, None, parsed, "system/*.rs", "ph", "j", 0, ctx)


@pytest.fixture
def patient(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    cx.put(node, {"resourceType": "Condition", "id": "dm", "subject": {"reference": "Patient/p1"}})
    return node


def test_parameters_defaults_and_errors():
    req = share.parse_parameters(
        params({"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}})
    )
    assert req.access == "read" and req.purposes[0]["code"] == "TREAT" and req.classes == []
    with pytest.raises(BadRequest):
        share.parse_parameters(params({"name": "access", "valueCode": "all"}))
    with pytest.raises(BadRequest):
        share.parse_parameters(params({"name": "class", "valueCode": "NotAType"}))
    with pytest.raises(BadRequest):  # no recipient and no link
        share.parse_parameters(
            params({"name": "period", "valuePeriod": {}}, {"name": "link", "valueBoolean": False})
        )
    with pytest.raises(BadRequest):
        share.parse_parameters(params({"name": "link", "valueString": "yes"}))
    with pytest.raises(BadRequest):
        share.parse_parameters({"resourceType": "Patient"})


def test_grant_creates_a_valid_active_consent(patient):
    req = share.parse_parameters(
        params(
            {"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}},
            {"name": "period", "valuePeriod": {"start": "2026-01-01", "end": "2026-12-31"}},
            {"name": "class", "valueCode": "Condition"},
            {"name": "class", "valueCode": "MedicationRequest"},
            {"name": "access", "valueCode": "read-write"},
        )
    )
    result = share.share(patient.store, "p1", req, home_country="TW")
    consent = patient.store.read("Consent", result.consents[0]["id"])
    assert consent["status"] == "active" and consent["meta"]["versionId"] == "1"
    provision = consent["provision"]
    assert provision["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert [c["code"] for c in provision["class"]] == ["Condition", "MedicationRequest"]
    assert {a["coding"][0]["code"] for a in provision["action"]} == {"access", "correct"}
    assert consent["identifier"][0]["value"] == result.share_id
    assert result.released_to is None
    out = result.to_parameters("http://x/fhir")
    assert out["parameter"][0]["resource"]["id"] == consent["id"]


def test_foreign_share_releases_the_key_and_revoke_destroys_it(patient):
    private, public = generate_x25519_keypair()
    req = share.parse_parameters(
        params(
            {"name": "recipient", "valueIdentifier": PH_DOC},
            {"name": "recipientNode", "valueCode": "ph"},
        )
    )
    result = share.share(
        patient.store, "p1", req, home_country="TW", recipient_key={"PH": public}.get
    )
    assert result.released_to == "PH"
    consent_id = result.consents[0]["id"]
    with patient.engine.connect() as conn:
        row = conn.execute(select(released_keys)).one()._mapping
    assert row["recipient_node"] == "PH" and row["consent_id"] == consent_id
    scope = KeyRing.patient_scope("p1")
    context = share.release_context(scope, consent_id, "PH")
    assert unwrap_x25519(row["wrapped"], private, context) == patient.keyring.data_key(scope)

    hook = NodeConsent(patient)
    dm = patient.store.read("Condition", "dm")
    assert hook.decide(foreign("PH"), "read", "Condition", dm, "p1").permit
    assert not hook.decide(foreign("TH"), "read", "Condition", dm, "p1").permit  # TH doctor

    revoke = share.parse_parameters(
        params(
            {"name": "revoke", "valueBoolean": True},
            {"name": "share", "valueString": result.share_id},
        )
    )
    revoked = share.share(patient.store, "p1", revoke, home_country="TW")
    assert revoked.revoked and patient.store.read("Consent", consent_id)["status"] == "inactive"
    with patient.engine.connect() as conn:
        row = conn.execute(select(released_keys)).one()._mapping
    assert row["wrapped"] is None and row["revoked_us"]
    assert not hook.decide(foreign("PH"), "read", "Condition", dm, "p1").permit  # next request


def test_revoke_by_recipient_and_nothing_to_revoke(patient):
    grant = params({"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}})
    share.share(patient.store, "p1", share.parse_parameters(grant), home_country="TW")
    share.share(patient.store, "p1", share.parse_parameters(grant), home_country="TW")
    revoke = params(
        {"name": "revoke", "valueBoolean": True},
        {"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}},
    )
    result = share.share(patient.store, "p1", share.parse_parameters(revoke), home_country="TW")
    assert len(result.consents) == 2
    with pytest.raises(NotFound):
        share.share(patient.store, "p1", share.parse_parameters(revoke), home_country="TW")


def test_consent_journal_rows_for_anchoring(patient):
    from anchoring import journal

    grant = params({"name": "recipient", "valueReference": {"reference": "Practitioner/d1"}})
    result = share.share(patient.store, "p1", share.parse_parameters(grant), home_country="TW")
    with patient.engine.connect() as conn:
        rows = conn.execute(
            select(journal.journal.c.res_type, journal.journal.c.res_id).where(
                journal.journal.c.res_type == "Consent"
            )
        ).all()
    assert ("Consent", result.consents[0]["id"]) in [tuple(r) for r in rows]


def test_erase_forgets_released_keys(patient):
    from fhir_server.operations.erase import erase_patient

    _, public = generate_x25519_keypair()
    req = share.parse_parameters(
        params(
            {"name": "recipient", "valueIdentifier": PH_DOC},
            {"name": "recipientNode", "valueCode": "PH"},
        )
    )
    share.share(patient.store, "p1", req, home_country="TW", recipient_key=lambda c: public)
    erase_patient(patient.store, "p1")
    with patient.engine.connect() as conn:
        row = conn.execute(select(released_keys)).one()._mapping
    assert row["wrapped"] is None and row["revoked_us"]
